import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { probeTemplateProblem, renderTemplate, type TemplateSource } from '../../src/policy/probe-template.js';

const from: TemplateSource = {
  scheme: 'https',
  host: 'k8s.internal',
  port: 6443,
  path: '/api/v1/namespaces/prod/pods/web-1',
  query: 'gracePeriodSeconds=0',
  queryParam: (name) => (name === 'ns' ? 'prod & staging' : undefined),
  json: (pointer) => ({ '/name': 'a/b c', '/spec': { replicas: 3 } })[pointer],
};

describe('probe templates', () => {
  it('fills URLs with encoded values, keeping the canonical path and query as they are', () => {
    assert.equal(
      renderTemplate('{scheme}://{host}:{port}{path}?dryRun=All&{query}&ns={query.ns}&n={json:/name}&s={json:/spec}&x={query.none}', from, true),
      'https://k8s.internal:6443/api/v1/namespaces/prod/pods/web-1?dryRun=All&gracePeriodSeconds=0&ns=prod%20%26%20staging&n=a%2Fb%20c&s=%7B%22replicas%22%3A3%7D&x=',
    );
    assert.equal(renderTemplate('http://{host}/', { ...from, host: '::1' }, true), 'http://[::1]/');
  });

  it('fills bodies with JSON values', () => {
    assert.equal(renderTemplate('{"name":{json:/name},"spec":{json:/spec},"none":{json:/none}}', from, false), '{"name":"a/b c","spec":{"replicas":3},"none":null}');
  });

  it('names what is wrong with a template', () => {
    assert.equal(probeTemplateProblem('https://{host}/preview'), null);
    assert.match(probeTemplateProblem('https://{host}/{table}')!, /unknown placeholder \{table\}/);
    assert.match(probeTemplateProblem('file:///etc/passwd')!, /must be http or https/);
    assert.match(probeTemplateProblem('not a url')!, /is not a URL/);
    assert.equal(probeTemplateProblem('{"a":{json:/x}}', false), null);
  });
});
