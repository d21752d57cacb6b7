/**
 * Slack's HTTP deliveries (`POST /slack/events` on the admin listener), handed to Bolt. Bolt's own
 * HTTPReceiver throws, outside any handler, on a correctly signed body that is not an object
 * (`payload=null`), which ends the process. Here every step is inside one try: a signature that does
 * not verify is a 401, a body that is not an object a 400, and a failing handler is logged; nothing a
 * request carries can stop the proxy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HTTPModuleFunctions as http, HTTPResponseAck, type App, type Receiver } from '@slack/bolt';
import type { Logger } from '../../log.js';

/** Slack's deliveries are small; a larger body is refused before it is read whole. */
const BODY_LIMIT = 1024 * 1024;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export class SlackHttpReceiver implements Receiver {
  private app: App | null = null;

  constructor(
    private readonly signingSecret: string,
    private readonly log: Logger,
  ) {}

  init(app: App): void {
    this.app = app;
  }

  /** Nothing to listen on: the admin listener routes requests here. */
  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const logger = boltLogger(this.log);
    try {
      let buffered;
      try {
        buffered = await http.parseAndVerifyHTTPRequest({ enabled: true, signingSecret: this.signingSecret, bodyLimit: BODY_LIMIT }, req);
      } catch (err) {
        const tooLarge = http.isRawBodyError(err) && (err.type === 'entity.too.large' || err.statusCode === 413);
        if (!tooLarge) this.log.warn({ err: { message: (err as Error).message } }, 'a Slack request did not verify');
        http.buildNoBodyResponse(res, tooLarge ? 413 : 401);
        return;
      }
      let body: unknown;
      try {
        body = http.parseHTTPRequestBody(buffered);
      } catch {
        body = undefined;
      }
      if (!isObject(body)) {
        this.log.warn('a signed Slack request whose body is not an object was refused');
        http.buildNoBodyResponse(res, 400);
        return;
      }
      if (body.ssl_check === '1') return http.buildSSLCheckResponse(res);
      if (body.type === 'url_verification') return http.buildUrlVerificationResponse(res, body);
      const ack = new HTTPResponseAck({
        logger,
        processBeforeResponse: false,
        unhandledRequestHandler: ({ response }) => http.buildNoBodyResponse(response, 404),
        unhandledRequestTimeoutMillis: 3001,
        httpRequest: buffered,
        httpRequestBody: body,
        httpResponse: res,
      });
      try {
        await this.app?.processEvent({
          body,
          ack: ack.bind(),
          retryNum: http.extractRetryNumFromHTTPRequest(req),
          retryReason: http.extractRetryReasonFromHTTPRequest(req),
        });
      } catch (err) {
        this.log.warn({ err }, 'a Slack event handler failed');
        if (!res.headersSent) ack.ack();
      }
    } catch (err) {
      this.log.warn({ err }, 'a Slack request could not be handled');
      if (!res.headersSent) http.buildNoBodyResponse(res, 500);
    }
  }
}

/** Bolt's logger interface over ours (only warnings and errors are of interest). */
function boltLogger(log: Logger): ConstructorParameters<typeof HTTPResponseAck>[0]['logger'] {
  const noop = (): void => undefined;
  return {
    debug: noop,
    info: noop,
    warn: (...msg: unknown[]) => log.warn(msg.map(String).join(' ')),
    error: (...msg: unknown[]) => log.error(msg.map(String).join(' ')),
    setLevel: noop,
    getLevel: () => 'warn' as never,
    setName: noop,
  };
}
