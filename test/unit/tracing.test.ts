import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pathTemplate } from '../../src/tracing/path-template.js';
import { tracingConfigured } from '../../src/tracing/tracing.js';

describe('tracingConfigured: on only with an OTLP endpoint', () => {
  it('reads the endpoints, and OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn it off', () => {
    assert.equal(tracingConfigured({}), false);
    assert.equal(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }), false);
    assert.equal(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
    assert.equal(tracingConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), true);
    assert.equal(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }), false);
    assert.equal(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' }), false);
    assert.equal(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'false' }), true);
  });
});

describe('pathTemplate: the path a span shows', () => {
  it('keeps words and API versions, and hides what may be an id or a value', () => {
    assert.equal(pathTemplate('/v1/items'), '/v1/items');
    assert.equal(pathTemplate('/v2beta1/projects/my-project/items'), '/v2beta1/projects/my-project/items');
    assert.equal(pathTemplate('/users/12345/orders'), '/users/*/orders');
    assert.equal(pathTemplate('/files/3f2504e0-4f89-11d3-9a0c-0305e82c3301'), '/files/*');
    assert.equal(pathTemplate('/reset/sk_live_abcdefghijklmnopqrstuvwxyz'), '/reset/*');
    assert.equal(pathTemplate('/search/caf\u00e9 au lait'), '/search/*');
    assert.equal(pathTemplate('/'), '/');
    assert.equal(pathTemplate('/a/'), '/a/');
  });

  it('stops after 32 segments', () => {
    const long = `/${Array.from({ length: 40 }, () => 'a').join('/')}`;
    assert.equal(pathTemplate(long), `/${Array.from({ length: 32 }, () => 'a').join('/')}/**`);
  });
});
