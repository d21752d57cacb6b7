/**
 * The deployment files (Dockerfile, compose, Kubernetes, the Teams app package) agree with the code:
 * ports, environment variable names, probe paths, the UID, the policy mount, the channels' endpoints.
 * Nothing here runs Docker or a cluster: the files are parsed, and the policies they ship are checked
 * with `airlock policy check|test`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { crc32, inflateSync } from 'node:zlib';
import { parse, parseAllDocuments } from 'yaml';

const ROOT = join(import.meta.dirname, '../..');
const K8S = join(ROOT, 'deploy/kubernetes');
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');
const run = promisify(execFile);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

// ---- what the code reads ------------------------------------------------------------------------

function envNamesFromCode(): Set<string> {
  const names = new Set<string>();
  for (const m of read('src/cli/serve.ts').matchAll(/\.env\('([A-Z0-9_]+)'\)/g)) names.add(m[1]!);
  const config = read('src/config.ts');
  for (const fn of ['slackFromEnv', 'teamsFromEnv', 'storeSecretsFromEnv', 'inboxFromEnv']) {
    const start = config.indexOf(`export function ${fn}`);
    assert.ok(start >= 0, `${fn} not found in src/config.ts`);
    const body = config.slice(start, config.indexOf('\n}\n', start));
    for (const m of body.matchAll(/env\.([A-Z0-9_]+)/g)) names.add(m[1]!);
  }
  return names;
}
const CODE_ENV = envNamesFromCode();
/** Variables Node itself reads, allowed beside Airlock's. */
const NODE_ENV_NAMES = new Set(['NODE_ENV', 'NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS']);

function assertKnownEnv(names: Iterable<string>, where: string): void {
  for (const n of names) assert.ok(CODE_ENV.has(n) || NODE_ENV_NAMES.has(n), `${where}: ${n} is not an environment variable airlock serve reads`);
}

const ADMIN_SOURCE = read('src/admin/server.ts');
function assertAdminServes(path: string): void {
  assert.ok(ADMIN_SOURCE.includes(`case '${path}'`), `src/admin/server.ts does not serve ${path}`);
}

function portOf(hostPort: string): number {
  const port = Number(/:(\d+)$/.exec(hostPort)?.[1]);
  assert.ok(Number.isInteger(port), `no port in ${hostPort}`);
  return port;
}

// ---- Dockerfile ---------------------------------------------------------------------------------

interface Instruction { op: string; args: string }
function parseDockerfile(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  const logical = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const line of logical) {
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `Dockerfile: cannot parse "${line}"`);
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stages.push([]);
    assert.ok(stages.length > 0, 'Dockerfile: instruction before FROM');
    stages[stages.length - 1]!.push({ op, args: m[2]! });
  }
  return stages;
}
const stages = parseDockerfile(read('Dockerfile'));
const runtime = stages[stages.length - 1]!;
const all = (op: string): Instruction[] => runtime.filter((i) => i.op === op);
const one = (op: string): string => {
  const found = all(op);
  assert.equal(found.length, 1, `Dockerfile runtime stage: expected one ${op}`);
  return found[0]!.args;
};
function dockerEnv(): Map<string, string> {
  const env = new Map<string, string>();
  for (const i of all('ENV')) for (const m of i.args.matchAll(/([A-Z0-9_]+)=("[^"]*"|\S+)/g)) env.set(m[1]!, m[2]!.replace(/^"|"$/g, ''));
  return env;
}
const DOCKER_ENV = dockerEnv();
const PROXY_PORT = portOf(DOCKER_ENV.get('AIRLOCK_LISTEN') ?? '');
const ADMIN_PORT = portOf(DOCKER_ENV.get('AIRLOCK_ADMIN_LISTEN') ?? '');
const POLICY_DIR = DOCKER_ENV.get('AIRLOCK_POLICIES') ?? '';
const UID = Number(one('USER'));

describe('Dockerfile', () => {
  it('is multi-stage on node:24-bookworm-slim, building in the first stage', () => {
    assert.ok(stages.length >= 2);
    for (const s of stages) assert.match(s[0]!.args, /^node:24-bookworm-slim\b/);
    const build = stages[0]!.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    assert.match(build, /npm ci\b/);
    assert.match(build, /npm run build/);
  });

  it('runtime: production dependencies only (installed in a stage of their own), dist/ from the build stage, no npm, a fixed numeric non-root USER', () => {
    const deps = stages.slice(0, -1).find((st) => st.some((i) => i.op === 'RUN' && /npm ci\b[^\n]*--omit=dev/.test(i.args)));
    assert.ok(deps, 'no stage installs production dependencies only');
    assert.ok(deps.some((i) => i.op === 'RUN' && /--ignore-scripts/.test(i.args)), 'prepare would run tsc, which is a dev dependency');
    const depsName = /\bAS\s+(\S+)/i.exec(deps[0]!.args)?.[1];
    assert.ok(all('COPY').some((i) => new RegExp(`--from=${depsName}\\s+\\S*node_modules`).test(i.args)), 'node_modules is not copied from the deps stage');
    assert.ok(all('COPY').some((i) => /--from=\S+\s+\S*dist\/?\s/.test(i.args)), 'dist/ is not copied from the build stage');
    const runs = all('RUN').map((i) => i.args).join('\n');
    assert.doesNotMatch(runs, /npm (ci|install)/, 'the runtime stage runs no npm');
    for (const path of ['/usr/local/bin/npm', '/usr/local/bin/npx', '/usr/local/lib/node_modules']) assert.ok(runs.includes(path), `the runtime stage removes ${path}`);
    assert.ok(Number.isInteger(UID) && UID > 0, `USER must be a numeric UID, got "${one('USER')}"`);
  });

  it('carries OCI labels: title, the version given at build time, the package\'s licence', () => {
    const labels = new Map([...all('LABEL').map((i) => i.args).join(' ').matchAll(/(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    assert.equal(labels.get('org.opencontainers.image.title'), 'Airlock');
    assert.equal(labels.get('org.opencontainers.image.version'), '${VERSION}');
    assert.ok(all('ARG').some((i) => /^VERSION\b/.test(i.args)));
    assert.equal(labels.get('org.opencontainers.image.licenses'), (JSON.parse(read('package.json')) as { license: string }).license);
  });

  it('sets the listeners and policy folder in the environment, and they are variables serve reads', () => {
    assertKnownEnv(DOCKER_ENV.keys(), 'Dockerfile ENV');
    assert.deepEqual(one('EXPOSE').split(/\s+/).map(Number).sort(), [PROXY_PORT, ADMIN_PORT].sort());
    assert.match(DOCKER_ENV.get('AIRLOCK_LISTEN')!, /^0\.0\.0\.0:/);
    assert.match(DOCKER_ENV.get('AIRLOCK_ADMIN_LISTEN')!, /^0\.0\.0\.0:/);
  });

  it('ships the default policies in the policy folder, with no VOLUME (which would leave anonymous volumes behind)', () => {
    assert.equal(POLICY_DIR, '/etc/airlock/policies');
    assert.ok(all('COPY').some((i) => i.args.startsWith('policies/') && i.args.trim().endsWith(`${POLICY_DIR}/`)));
    assert.equal(all('VOLUME').length, 0);
  });

  it('health-checks /readyz with node (as compose does) and starts dist/cli/main.js serve', () => {
    const hc = one('HEALTHCHECK');
    assert.match(hc, /CMD \["node", "-e",/);
    assert.match(hc, /\/readyz/);
    assert.match(hc, /':9090'/);
    assertAdminServes('/readyz');
    const compose = (parse(read('deploy/docker-compose.yml')) as { services: Record<string, { healthcheck?: { test: string[] } }> }).services.airlock!;
    assert.match(compose.healthcheck!.test.join(' '), /\/readyz/, 'the image and compose check the same endpoint');
    assert.deepEqual(JSON.parse(one('ENTRYPOINT')), ['node', '/app/dist/cli/main.js']);
    // The image runs node itself, not the bin's start line: it must pass the same V8 flags.
    const binFlags = /^#!\/usr\/bin\/env -S node (.*)$/m.exec(read('src/cli/main.ts'))?.[1];
    assert.ok(binFlags, 'src/cli/main.ts starts with #!/usr/bin/env -S node <flags>');
    assert.equal(DOCKER_ENV.get('NODE_OPTIONS'), binFlags);
    assert.deepEqual(JSON.parse(one('CMD')), ['serve']);
    // dist/cli/main.js is what tsconfig.build.json makes of src/cli/main.ts.
    const build = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    assert.deepEqual([build.compilerOptions.rootDir, build.compilerOptions.outDir], ['src', 'dist']);
    assert.ok(existsSync(join(ROOT, 'src/cli/main.ts')));
    assert.ok(all('WORKDIR').some((i) => i.args === '/app'));
  });

  it('.dockerignore keeps node_modules, dist, .git and test artefacts out of the context', () => {
    const lines = read('.dockerignore').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', 'dist', '.git', 'coverage', 'test', '.tmp']) assert.ok(lines.includes(p), `.dockerignore lacks ${p}`);
    for (const p of ['src', 'policies', 'package.json', 'package-lock.json']) assert.ok(!lines.includes(p), `.dockerignore must not exclude ${p}`);
  });
});

// ---- policies -----------------------------------------------------------------------------------

async function policyCli(cmd: 'check' | 'test', dir: string): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'policy', cmd, dir], { cwd: ROOT });
  return stdout;
}

// ---- compose ------------------------------------------------------------------------------------

const composeText = read('deploy/docker-compose.yml');
const compose = parse(composeText) as Doc;
const services = compose.services as Record<string, Doc>;

describe('deploy/docker-compose.yml', () => {
  const airlock = services.airlock;
  const env = airlock.environment as Record<string, string>;

  it('has redis, airlock (proxy), approvals, demo-api and agent, started in order of health', () => {
    assert.deepEqual(Object.keys(services).sort(), ['agent', 'airlock', 'approvals', 'demo-api', 'redis']);
    assert.equal(airlock.build.context, '..');
    assert.ok(existsSync(join(ROOT, 'deploy', airlock.build.context, airlock.build.dockerfile)));
    assert.deepEqual(airlock.depends_on.redis, { condition: 'service_healthy' });
    assert.equal(services.agent.depends_on.airlock.condition, 'service_healthy');
    for (const name of ['redis', 'airlock', 'demo-api']) assert.ok(services[name].healthcheck, `${name} has no healthcheck`);
  });

  it('airlock: known variables, the Dockerfile ports published on loopback, a health check the admin server answers', () => {
    assertKnownEnv(Object.keys(env), 'compose airlock.environment');
    assert.equal(portOf(env.AIRLOCK_LISTEN!), PROXY_PORT);
    assert.equal(portOf(env.AIRLOCK_ADMIN_LISTEN!), ADMIN_PORT);
    assert.deepEqual((airlock.ports as string[]).sort(), [`127.0.0.1:${PROXY_PORT}:${PROXY_PORT}`, `127.0.0.1:${ADMIN_PORT}:${ADMIN_PORT}`].sort());
    const hc = (airlock.healthcheck.test as string[]).join(' ');
    const path = /127\.0\.0\.1:(\d+)(\/[a-z]+)/.exec(hc);
    assert.ok(path, 'no admin URL in the airlock healthcheck');
    assert.equal(Number(path[1]), ADMIN_PORT);
    assertAdminServes(path[2]!);
  });

  it('airlock: REDIS_URL names the redis service, which requires the REDIS_PASSWORD Airlock sends; a state key long enough', () => {
    const url = new URL(env.REDIS_URL!);
    assert.equal(url.protocol, 'redis:');
    assert.ok(services[url.hostname], `REDIS_URL host ${url.hostname} is not a service`);
    const command = services.redis.command as string[];
    assert.equal(command[command.indexOf('--requirepass') + 1], env.REDIS_PASSWORD);
    assert.equal(services.redis.environment.REDISCLI_AUTH, env.REDIS_PASSWORD, 'the health check authenticates');
    assert.ok(Buffer.byteLength(env.AIRLOCK_STATE_KEY!) >= 32);
  });

  it('approvals: the approvals role on the same Redis, key and policies as the proxy, its API on loopback', () => {
    const ap = services.approvals;
    const aenv = ap.environment as Record<string, string>;
    assertKnownEnv(Object.keys(aenv), 'compose approvals.environment');
    assert.deepEqual([env.AIRLOCK_ROLE, aenv.AIRLOCK_ROLE], ['proxy', 'approvals']);
    for (const k of ['REDIS_URL', 'REDIS_PASSWORD', 'AIRLOCK_STATE_KEY', 'AIRLOCK_POLICIES']) assert.equal(aenv[k], env[k], k);
    assert.deepEqual(ap.volumes, airlock.volumes);
    assert.equal(ap.image, airlock.image, 'the same image, built once');
    assert.deepEqual(ap.ports, [`127.0.0.1:9091:${ADMIN_PORT}`]);
    assert.equal(portOf(aenv.AIRLOCK_ADMIN_LISTEN!), ADMIN_PORT);
    assert.deepEqual(ap.depends_on.redis, { condition: 'service_healthy' });
  });

  it('airlock: the demo policies are mounted read-only at AIRLOCK_POLICIES', () => {
    const [src, target, mode] = (airlock.volumes as string[])[0]!.split(':');
    assert.equal(target, POLICY_DIR);
    assert.equal(env.AIRLOCK_POLICIES, POLICY_DIR);
    assert.equal(mode, 'ro');
    assert.ok(statSync(join(ROOT, 'deploy', src!)).isDirectory());
  });

  it('agent: proxies (lower and upper case) point at the airlock service', () => {
    const agentEnv = services.agent.environment as Record<string, string>;
    for (const name of ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY']) {
      assert.equal(agentEnv[name], `http://airlock:${PROXY_PORT}`, name);
    }
  });

  it('has no stray $ in its values (compose would interpolate it; shell variables are $$)', () => {
    assert.doesNotMatch(JSON.stringify(compose).replace(/\$\$/g, ''), /\$/);
  });

  it('the demo policy names compose services, allows the pinned subnet, and passes policy check and test', async () => {
    const policy = parse(read('deploy/compose/policies/demo.yaml')) as Doc;
    const hosts = new Set((policy.rules as Doc[]).flatMap((r) => (r.match.hosts ?? []) as string[]));
    assert.ok(hosts.size > 0);
    for (const h of hosts) assert.ok(services[h], `policy host ${h} is not a compose service`);
    const subnets = (compose.networks.demo.ipam.config as Doc[]).map((c) => c.subnet as string);
    assert.deepEqual(policy.destinations.allow, subnets);
    assert.equal(policy.identities[env.AIRLOCK_IDENTITY!] !== undefined, true, 'AIRLOCK_IDENTITY is not an identity of the demo policy');
    const agentScript = (services.agent.command as string[]).join('\n');
    for (const h of hosts) assert.ok(agentScript.includes(`http://${h}:`), `the agent never calls ${h}`);
    assert.match(await policyCli('check', 'deploy/compose/policies'), /^ok: /);
    assert.match(await policyCli('test', 'deploy/compose/policies'), / 0 failed/);
  });
});

// ---- Kubernetes ---------------------------------------------------------------------------------

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}
const k8sDocs: { file: string; doc: Doc }[] = yamlFiles(K8S)
  .filter((f) => !relative(K8S, f).startsWith('policies/'))
  .flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
      assert.deepEqual(d.errors, [], `${file}: YAML errors`);
      return { file: relative(K8S, file), doc: d.toJS() as Doc };
    }),
  );
const kind = (k: string, name?: string): Doc[] =>
  k8sDocs.filter(({ doc }) => doc?.kind === k && (name === undefined || doc.metadata?.name === name)).map(({ doc }) => doc);
const kustomization = kind('Kustomization')[0];
const agentDeployment = kind('Deployment', 'agent').find((d) => d.spec.selector);
const podSpec = agentDeployment.spec.template.spec;
const containers = podSpec.containers as Doc[];
const airlockC = containers.find((c) => c.name === 'airlock');
const agentC = containers.find((c) => c.name === 'agent');
const generator = (name: string): Doc => (kustomization.configMapGenerator as Doc[]).find((g) => g.name === name);
const configLiterals = new Map<string, string>(
  (generator('airlock-config').literals as string[]).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);

describe('deploy/kubernetes', () => {
  it('kustomization lists files that exist, and every component is a Component', () => {
    for (const r of kustomization.resources as string[]) assert.ok(existsSync(join(K8S, r)), `missing resource ${r}`);
    for (const dir of readdirSync(join(K8S, 'components'))) {
      const c = parse(readFileSync(join(K8S, 'components', dir, 'kustomization.yaml'), 'utf8')) as Doc;
      assert.equal(c.kind, 'Component');
      for (const p of [...(c.resources ?? []), ...((c.patches ?? []) as Doc[]).map((x) => x.path)]) assert.ok(existsSync(join(K8S, 'components', dir, p)));
    }
  });

  it('policies: a ConfigMap generated in place (no hash) from every policy file, mounted as a directory at AIRLOCK_POLICIES', () => {
    const g = generator('airlock-policies');
    assert.equal(g.options?.disableNameSuffixHash, true);
    const files = readdirSync(join(K8S, 'policies')).filter((f) => /\.ya?ml$/.test(f)).map((f) => `policies/${f}`);
    assert.deepEqual([...(g.files as string[])].sort(), files.sort());
    assert.equal(configLiterals.get('AIRLOCK_POLICIES'), POLICY_DIR);
    const volume = (podSpec.volumes as Doc[]).find((v) => v.configMap?.name === 'airlock-policies');
    assert.ok(volume);
    const mounts = (airlockC.volumeMounts as Doc[]).filter((m) => m.name === volume.name);
    assert.equal(mounts.length, 1);
    assert.equal(mounts[0].mountPath, POLICY_DIR);
    assert.equal(mounts[0].subPath, undefined, 'a subPath mount never receives ConfigMap updates');
    assert.equal(mounts[0].readOnly, true);
  });

  it('sidecar: only variables serve reads, from the ConfigMap and env, in the proxy role (Slack is the approvals service\'s)', () => {
    assertKnownEnv(configLiterals.keys(), 'airlock-config');
    assertKnownEnv((airlockC.env as Doc[]).map((e) => e.name), 'airlock container env');
    const refs = (airlockC.envFrom as Doc[]).map((e) => e.configMapRef?.name ?? e.secretRef?.name);
    assert.deepEqual(refs, ['airlock-config']);
    assert.equal(configLiterals.get('AIRLOCK_ROLE'), 'proxy');
    // Tokens only from the Secret, never as ConfigMap literals.
    for (const k of configLiterals.keys()) assert.doesNotMatch(k, /TOKEN|SECRET/);
  });

  it('airlock container: ports and probes match the listeners and the admin server', () => {
    const ports = new Map((airlockC.ports as Doc[]).map((p) => [p.name as string, p.containerPort as number]));
    assert.equal(ports.get('proxy'), PROXY_PORT);
    assert.equal(ports.get('metrics'), ADMIN_PORT);
    assert.equal(portOf(configLiterals.get('AIRLOCK_LISTEN')!), PROXY_PORT);
    assert.equal(portOf(configLiterals.get('AIRLOCK_ADMIN_LISTEN')!), ADMIN_PORT);
    assert.match(configLiterals.get('AIRLOCK_ADMIN_LISTEN')!, /^0\.0\.0\.0:/, 'probes reach the pod IP');
    assert.deepEqual([airlockC.livenessProbe.httpGet.path, airlockC.readinessProbe.httpGet.path], ['/healthz', '/readyz']);
    for (const p of [airlockC.livenessProbe, airlockC.readinessProbe]) {
      assert.ok(p.httpGet.port === 'metrics' || p.httpGet.port === ADMIN_PORT);
      assertAdminServes(p.httpGet.path);
    }
  });

  it('airlock container: the Dockerfile UID, non-root, read-only root, no capabilities, resources', () => {
    assert.equal(podSpec.securityContext.runAsNonRoot, true);
    for (const c of containers) {
      assert.equal(c.securityContext.readOnlyRootFilesystem, true, c.name);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL'], c.name);
      assert.equal(c.securityContext.capabilities.add, undefined, c.name);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false, c.name);
      assert.ok(c.resources?.requests?.memory && c.resources?.limits?.memory, `${c.name} has no memory request/limit`);
    }
    assert.equal(airlockC.securityContext.runAsUser, UID);
    assert.notEqual(agentC.securityContext.runAsUser ?? podSpec.securityContext.runAsUser, UID, 'the agent must not share Airlock\'s UID');
  });

  it('agent container: proxied through the sidecar on loopback', () => {
    const env = new Map((agentC.env as Doc[]).map((e) => [e.name as string, e.value as string]));
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) assert.equal(env.get(name), `http://127.0.0.1:${PROXY_PORT}`, name);
  });

  it('REDIS_URL names the Redis Service and its port', () => {
    const url = new URL(configLiterals.get('REDIS_URL')!);
    const svc = kind('Service', url.hostname)[0];
    assert.ok(svc, `no Service ${url.hostname}`);
    assert.ok((svc.spec.ports as Doc[]).some((p) => p.port === Number(url.port || 6379)));
  });

  it('Airlock takes the state key and Redis\'s password from the airlock-state Secret; the bundled Redis requires that password', () => {
    const secretRef = (c: Doc, name: string): Doc => (c.env as Doc[]).find((e) => e.name === name)?.valueFrom?.secretKeyRef;
    const example = kind('Secret', 'airlock-state')[0];
    assert.deepEqual(Object.keys(example.stringData).sort(), ['AIRLOCK_STATE_KEY', 'REDIS_PASSWORD']);
    for (const name of ['AIRLOCK_STATE_KEY', 'REDIS_PASSWORD']) assert.deepEqual(secretRef(airlockC, name), { name: 'airlock-state', key: name });
    assert.ok(!(kustomization.resources as string[]).includes('secret-state.example.yaml'), 'example secrets are never applied');
    for (const k of configLiterals.keys()) assert.doesNotMatch(k, /PASSWORD|STATE_KEY/);
    const redisC = kind('Deployment', 'airlock-redis')[0].spec.template.spec.containers[0];
    const args = redisC.args as string[];
    assert.equal(args[args.indexOf('--requirepass') + 1], '$(REDIS_PASSWORD)');
    assert.deepEqual(secretRef(redisC, 'REDIS_PASSWORD'), { name: 'airlock-state', key: 'REDIS_PASSWORD' });
    assert.deepEqual(secretRef(redisC, 'REDISCLI_AUTH'), { name: 'airlock-state', key: 'REDIS_PASSWORD' }, 'the probe authenticates');
    assert.doesNotMatch(configLiterals.get('REDIS_URL')!, /@/, 'no password in the URL');
  });

  it('the Redis NetworkPolicy admits only pods that run Airlock, on the Redis port, and lets Redis reach nothing', () => {
    const np = kind('NetworkPolicy', 'airlock-redis')[0];
    const redisLabels = kind('Deployment', 'airlock-redis')[0].spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(np.spec.podSelector.matchLabels as Record<string, string>)) assert.equal(redisLabels[k], v);
    assert.deepEqual([...np.spec.policyTypes].sort(), ['Egress', 'Ingress']);
    assert.deepEqual(np.spec.egress, []);
    assert.equal(np.spec.ingress.length, 1);
    const from = np.spec.ingress[0].from as Doc[];
    assert.equal(from.length, 1);
    assert.equal(from[0].namespaceSelector, undefined);
    const agentLabels = agentDeployment.spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(from[0].podSelector.matchLabels as Record<string, string>)) assert.equal(agentLabels[k], v, 'Airlock pods match');
    assert.ok(!Object.keys(from[0].podSelector.matchLabels as object).includes('app.kubernetes.io/name'), 'selects by the sidecar label, not one app');
    assert.deepEqual(np.spec.ingress[0].ports, [{ protocol: 'TCP', port: 6379 }]);
  });

  it('the approvals service: the approvals role, the same policy and secrets, optional Slack, Teams and OIDC, reachable through the Ingress on the admin port only', () => {
    const d = kind('Deployment', 'airlock-approvals')[0];
    const c = d.spec.template.spec.containers[0];
    const env = new Map((c.env as Doc[]).map((e) => [e.name as string, e]));
    assert.equal(env.get('AIRLOCK_ROLE')?.value, 'approvals');
    assertKnownEnv(env.keys(), 'approvals env');
    for (const name of ['AIRLOCK_STATE_KEY', 'REDIS_PASSWORD']) assert.deepEqual(env.get(name)?.valueFrom?.secretKeyRef, { name: 'airlock-state', key: name });
    const secrets = (c.envFrom as Doc[]).filter((e) => e.secretRef).map((e) => [e.secretRef.name, e.secretRef.optional]);
    assert.deepEqual(secrets, [['airlock-slack', true], ['airlock-teams', true], ['airlock-oidc', true]]);
    for (const name of ['airlock-slack', 'airlock-teams', 'airlock-oidc']) assertKnownEnv(Object.keys(kind('Secret', name)[0].stringData), `${name} example`);
    const teamsKeys = Object.keys(kind('Secret', 'airlock-teams')[0].stringData);
    for (const name of ['TEAMS_APP_ID', 'TEAMS_APP_SECRET', 'TEAMS_TENANT_ID']) assert.ok(teamsKeys.includes(name), `the airlock-teams example lacks ${name}, which Teams needs`);
    for (const file of ['secret-slack.example.yaml', 'secret-teams.example.yaml', 'secret-oidc.example.yaml']) {
      assert.ok(!(kustomization.resources as string[]).includes(file), `${file}: example secrets are never applied`);
    }
    const policies = (d.spec.template.spec.volumes as Doc[]).find((v) => v.configMap?.name === 'airlock-policies');
    assert.ok(policies, 'the same policy ConfigMap as the sidecars');
    assert.equal((c.ports as Doc[])[0].containerPort, ADMIN_PORT);
    assert.equal(c.securityContext.runAsUser, UID);
    const svc = kind('Service', 'airlock-approvals')[0];
    for (const [k, v] of Object.entries(svc.spec.selector as Record<string, string>)) assert.equal(d.spec.template.metadata.labels[k], v);
    const ingress = kind('Ingress', 'airlock-approvals')[0];
    const paths = (ingress.spec.rules[0].http.paths as Doc[]).map((p) => p.path as string);
    assert.deepEqual(paths.sort(), ['/inbox', '/slack/events', '/teams/messages', '/v1']);
    assert.ok(!paths.some((p) => p.startsWith('/metrics')), 'metrics are not published');
    for (const p of ingress.spec.rules[0].http.paths as Doc[]) assert.equal(p.backend.service.name, 'airlock-approvals');
    // The channels' endpoints are published exactly, nothing below them; and they are where the admin server serves them.
    const exact = (ingress.spec.rules[0].http.paths as Doc[]).filter((p) => p.pathType === 'Exact').map((p) => p.path as string);
    assert.deepEqual(exact.sort(), ['/slack/events', '/teams/messages']);
    assert.ok(read('src/approvals/slack/endpoint.ts').includes(`SLACK_EVENTS_PATH = '/slack/events'`), 'the admin server serves Slack at /slack/events');
    assert.ok(read('src/approvals/teams/endpoint.ts').includes(`TEAMS_MESSAGES_PATH = '/teams/messages'`), 'the admin server serves Teams at /teams/messages');
    const np = kind('NetworkPolicy', 'airlock-approvals')[0];
    for (const [k, v] of Object.entries(np.spec.podSelector.matchLabels as Record<string, string>)) assert.equal(d.spec.template.metadata.labels[k], v);
    assert.ok((np.spec.ingress as Doc[]).every((r) => (r.ports as Doc[]).every((p) => p.port === ADMIN_PORT)));
    const redisFrom = kind('NetworkPolicy', 'airlock-redis')[0].spec.ingress[0].from[0].podSelector.matchLabels as Record<string, string>;
    for (const [k, v] of Object.entries(redisFrom)) assert.equal(d.spec.template.metadata.labels[k], v, 'the approvals service reaches Redis');
  });

  it('the metrics Service selects the agent pods on the admin port, and the ServiceMonitor selects the Service', () => {
    const svc = kind('Service', 'agent-airlock-metrics')[0];
    const labels = agentDeployment.spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(svc.spec.selector as Record<string, string>)) assert.equal(labels[k], v);
    const port = (svc.spec.ports as Doc[]).find((p) => p.name === 'metrics');
    assert.equal(port.targetPort, 'metrics');
    const sm = kind('ServiceMonitor')[0];
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Record<string, string>)) assert.equal(svc.metadata.labels[k], v);
    assert.deepEqual([sm.spec.endpoints[0].port, sm.spec.endpoints[0].path], ['metrics', '/metrics']);
    assertAdminServes('/metrics');
  });

  it('the NetworkPolicy selects the agent pods and allows egress to DNS, Redis and 443/80 only', () => {
    const np = kind('NetworkPolicy', 'agent-egress')[0];
    const labels = agentDeployment.spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(np.spec.podSelector.matchLabels as Record<string, string>)) assert.equal(labels[k], v);
    const ports = (np.spec.egress as Doc[]).flatMap((r) => (r.ports as Doc[]).map((p) => `${p.protocol}/${p.port}`));
    assert.deepEqual([...new Set(ports)].sort(), ['TCP/443', 'TCP/53', 'TCP/6379', 'TCP/80', 'UDP/53']);
    assert.ok((np.spec.ingress as Doc[]).every((r) => (r.ports as Doc[]).every((p) => p.port === ADMIN_PORT)));
  });

  it('the egress-lock component lets only the Dockerfile UID out, with NET_ADMIN in the init container only', () => {
    const patch = k8sDocs.find(({ file }) => file === 'components/egress-lock/init-container.yaml')!.doc;
    const [init] = patch.spec.template.spec.initContainers as Doc[];
    const script = (init.args as string[]).join('\n');
    const uids = [...script.matchAll(/--uid-owner (\d+)/g)].map((m) => Number(m[1]));
    assert.ok(uids.length > 0);
    for (const u of uids) assert.equal(u, UID);
    assert.match(script, new RegExp(`--dport ${ADMIN_PORT} -m owner ! --uid-owner`));
    assert.match(script, /-A OUTPUT -j REJECT/);
    assert.ok((init.securityContext.capabilities.add as string[]).includes('NET_ADMIN'));
    for (const c of containers) assert.ok(!JSON.stringify(c.securityContext).includes('NET_ADMIN'), c.name);
  });

  it('the policy files of the ConfigMap pass policy check and test, and name AIRLOCK_IDENTITY', async () => {
    const policy = parse(readFileSync(join(K8S, 'policies/agent.yaml'), 'utf8')) as Doc;
    assert.ok(policy.identities[configLiterals.get('AIRLOCK_IDENTITY')!]);
    assert.match(await policyCli('check', 'deploy/kubernetes/policies'), /^ok: /);
    assert.match(await policyCli('test', 'deploy/kubernetes/policies'), / 0 failed/);
  });
});

// ---- Teams app package --------------------------------------------------------------------------

const TEAMS_APP = join(ROOT, 'deploy/teams-app');

interface Png { width: number; height: number; colorType: number; chunks: string[]; pixels: Buffer; channels: number }

/** A PNG read whole: its chunks (each CRC checked), its header, and its 8-bit pixels unfiltered. */
function readPng(file: string): Png {
  const b = readFileSync(file);
  assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${file}: not a PNG`);
  const chunks: string[] = [];
  const idat: Buffer[] = [];
  for (let off = 8; off < b.length; ) {
    const len = b.readUInt32BE(off);
    const type = b.toString('latin1', off + 4, off + 8);
    assert.equal(b.readUInt32BE(off + 8 + len), crc32(b.subarray(off + 4, off + 8 + len)), `${file}: bad CRC in ${type}`);
    if (type === 'IDAT') idat.push(b.subarray(off + 8, off + 8 + len));
    chunks.push(type);
    off += 12 + len;
  }
  assert.equal(chunks[0], 'IHDR', `${file}: IHDR first`);
  assert.equal(chunks.at(-1), 'IEND', `${file}: IEND last`);
  const width = b.readUInt32BE(16);
  const height = b.readUInt32BE(20);
  const [depth, colorType, , , interlace] = b.subarray(24, 29);
  assert.equal(depth, 8, `${file}: 8 bits per sample`);
  assert.equal(interlace, 0, `${file}: not interlaced`);
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType!];
  assert.ok(channels, `${file}: colour type ${colorType}`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  assert.equal(raw.length, height * (1 + stride), `${file}: image data of the header's size`);
  const pixels = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (1 + stride)]!;
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (1 + stride) + 1 + x]!;
      const a = x >= channels ? pixels[y * stride + x - channels]! : 0;
      const up = y > 0 ? pixels[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels]! : 0;
      const p = a + up - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - up) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - up) <= Math.abs(p - c) ? up : c;
      const predictor = [0, a, up, (a + up) >> 1, paeth][filter];
      assert.ok(predictor !== undefined, `${file}: filter type ${filter}`);
      pixels[y * stride + x] = (v + predictor) & 0xff;
    }
  }
  return { width, height, colorType: colorType!, chunks, pixels, channels };
}

describe('deploy/teams-app', () => {
  const manifest = JSON.parse(readFileSync(join(TEAMS_APP, 'manifest.json'), 'utf8')) as Doc;

  it('manifest.json: a v1.19 Teams app manifest with one bot, for teams and group chats, whose ids are the placeholder replaced with TEAMS_APP_ID', () => {
    assert.equal(manifest.manifestVersion, '1.19');
    assert.match(manifest.$schema, /\/teams\/v1\.19\/MicrosoftTeams\.schema\.json$/);
    assert.match(manifest.version, /^\d+\.\d+\.\d+$/);
    const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
    assert.match(manifest.id, GUID);
    assert.equal(manifest.bots.length, 1);
    const [bot] = manifest.bots as Doc[];
    assert.equal(bot.botId, manifest.id, 'the app id and the bot id are both the Azure Bot\'s app id');
    assert.equal(manifest.id, '00000000-0000-0000-0000-000000000000', 'a placeholder, documented as such');
    assert.ok((bot.scopes as string[]).includes('team'));
    assert.ok((bot.scopes as string[]).includes('groupChat'));
    for (const s of bot.scopes as string[]) assert.ok(['team', 'groupChat', 'personal'].includes(s), s);
    assert.equal(bot.supportsFiles, false);
    assert.equal(bot.isNotificationOnly, false, 'people write to the bot to learn a conversation\'s id, and click its cards');
    assert.deepEqual(manifest.validDomains, []);
    assert.ok(manifest.name.short.length > 0 && manifest.name.short.length <= 30);
    assert.ok(manifest.description.short.length > 0 && manifest.description.short.length <= 80);
    assert.ok(manifest.description.full.length > 0 && manifest.description.full.length <= 4000);
    assert.match(manifest.accentColor, /^#[0-9a-f]{6}$/i);
    assert.ok(manifest.developer.name);
    for (const k of ['websiteUrl', 'privacyUrl', 'termsOfUseUrl']) assert.match(manifest.developer[k], /^https:\/\//, k);
  });

  it('the icons are PNG files in the package folder: color 192×192, outline 32×32 white on transparent', () => {
    const color = readPng(join(TEAMS_APP, manifest.icons.color as string));
    assert.deepEqual([color.width, color.height], [192, 192]);
    const outline = readPng(join(TEAMS_APP, manifest.icons.outline as string));
    assert.deepEqual([outline.width, outline.height], [32, 32]);
    assert.equal(outline.colorType, 6, 'RGBA: white on a transparent background');
    let opaque = 0;
    let clear = 0;
    for (let i = 0; i < outline.pixels.length; i += 4) {
      const [r, g, bl, alpha] = outline.pixels.subarray(i, i + 4);
      if (alpha === 0) clear++;
      else {
        opaque++;
        assert.deepEqual([r, g, bl], [255, 255, 255], `outline pixel ${i / 4} is not white`);
      }
    }
    assert.ok(opaque > 0 && clear > 0, 'a white shape on transparency');
    const files = readdirSync(TEAMS_APP).sort();
    assert.deepEqual(files, ['color.png', 'manifest.json', 'outline.png'], 'the package is exactly these three files');
  });
});
