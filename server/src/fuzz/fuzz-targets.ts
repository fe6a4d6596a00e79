/**
 * Every parser and endpoint that takes bytes from the network, as fuzz
 * targets. Parsers: nothing but their own typed error (PkiError) may come
 * out of them. Endpoints: no 5xx, no hang, and a 4xx says what was wrong in
 * the usual JSON error body (OCSP answers with OCSP responses instead).
 */
import * as crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { InjectOptions } from 'fastify';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import {
  PkiError,
  checkCsrPolicy,
  csrStringAttribute,
  decodeCertsOnly,
  parseCertificate,
  parseCrl,
  parseCsr,
  parseOcspGetPath,
  parseOcspRequest,
  parseOcspResponse,
  pemEncode,
  verifyCrl,
  verifyCsr,
} from '@latchkey/pki';
import { children, isConstructed, parseOne, readBitString, readBool, readOid, readString, readTime, readUnsignedInt, type Tlv } from '@latchkey/pki/der';
import { AgentMessage, EST_PATHS, FACTS_ATTRIBUTE_OID, GatewayEvent, GatewaySubscribe, MAX_FACTS_JSON, MEDIA_TYPES, PATHS, ServerMessage, WS_CLOSE_CODES } from '@latchkey/protocol';
import { describeCrl } from '../gateway/gateway-sync.js';
import { CLIENT_CERT_HEADER, b64, certFromBody, createToken, enroll, harness } from '../testing/harness.js';
import { readWsMessage } from '../upgrade-router.js';
import { FuzzViolation, expectOnly, within, type FuzzSession, type FuzzTarget } from './fuzz-engine.js';
import { FACTS, csrWithFacts, fixtures } from './fuzz-fixtures.js';
import { anyJson, bytesFor, jsonBytesFor, mutatedObject, nastyString } from './fuzz-mutate.js';

const isPki = (e: unknown): boolean => e instanceof PkiError;

// ------------------------------------------------------------------ parsers

/** Walks every element of a DER tree with every primitive reader: only DER_MALFORMED may come out. */
function walkDer(t: Tlv, depth = 0): void {
  if (depth > 100) return;
  const readers = [readOid, readUnsignedInt, readBitString, readBool, readString, readTime];
  for (const r of readers) {
    try {
      r(t, 'x');
    } catch (e) {
      if (!(e instanceof PkiError) || e.code !== 'DER_MALFORMED') throw e;
    }
  }
  if (isConstructed(t)) for (const c of children(t, 'x')) walkDer(c, depth + 1);
}

const der: FuzzTarget = {
  name: 'der',
  kind: 'parser',
  what: 'packages/pki der.ts: parseOne, children and every primitive reader over whole trees',
  boundedRuns: 400,
  async open(scope) {
    const f = await fixtures(scope);
    return {
      arbitrary: bytesFor([...f.csrs, ...f.ocspRequests, ...f.pkcs7, ...f.crls, ...f.certs]),
      check: (input) => expectOnly((e) => e instanceof PkiError && e.code === 'DER_MALFORMED', 'DER reader', () => walkDer(parseOne(input, 'fuzz'))),
    };
  },
};

const csr: FuzzTarget = {
  name: 'csr',
  kind: 'parser',
  what: 'packages/pki csr.ts: parseCsr (DER and PEM), verifyCsr, checkCsrPolicy, the facts attribute',
  boundedRuns: 600,
  async open(scope) {
    const f = await fixtures(scope);
    const signed = f.csrs.map((d) => parseCsr(d).info);
    return {
      arbitrary: fc.oneof({ weight: 5, arbitrary: bytesFor(f.csrs) }, { weight: 1, arbitrary: bytesFor(f.csrs).map((d) => Buffer.from(pemEncode('CERTIFICATE REQUEST', d))) }),
      check: (input) =>
        expectOnly(isPki, 'CSR parser', () => {
          const c = parseCsr(input);
          csrStringAttribute(c, FACTS_ATTRIBUTE_OID, MAX_FACTS_JSON);
          verifyCsr(c);
          // Proof of possession holds only for what the key signed: a mutated request that verifies must be a seed's.
          if (!signed.some((i) => i.equals(c.info))) throw new FuzzViolation('a mutated CertificationRequestInfo passed verifyCsr');
          checkCsrPolicy(c);
        }),
    };
  },
};

const ocsp: FuzzTarget = {
  name: 'ocsp',
  kind: 'parser',
  what: 'packages/pki ocsp.ts: parseOcspRequest (POST body), parseOcspGetPath (GET path)',
  boundedRuns: 600,
  async open(scope) {
    const f = await fixtures(scope);
    return {
      arbitrary: bytesFor(f.ocspRequests),
      check: (input) => {
        expectOnly(isPki, 'OCSP request parser', () => parseOcspRequest(input));
        expectOnly(isPki, 'OCSP GET path parser', () => parseOcspRequest(parseOcspGetPath(encodeURIComponent(input.toString('base64')))));
        expectOnly(isPki, 'OCSP GET path parser (raw path)', () => parseOcspRequest(parseOcspGetPath(input.toString('latin1'))));
      },
    };
  },
};

const pkcs7: FuzzTarget = {
  name: 'pkcs7',
  kind: 'parser',
  what: 'packages/pki pkcs7.ts: decodeCertsOnly from DER, PEM and EST base64 bodies, then each certificate',
  boundedRuns: 500,
  async open(scope) {
    const f = await fixtures(scope);
    return {
      arbitrary: bytesFor(f.pkcs7),
      check: (input) => {
        expectOnly(isPki, 'PKCS#7 reader', () => decodeCertsOnly(input).forEach((c) => expectOnly(isPki, 'certificate parser', () => parseCertificate(c))));
        expectOnly(isPki, 'PKCS#7 reader (EST base64 body)', () => decodeCertsOnly(input.toString('base64')));
        expectOnly(isPki, 'PKCS#7 reader (latin1 text)', () => decodeCertsOnly(input.toString('latin1')));
      },
    };
  },
};

const crl: FuzzTarget = {
  name: 'crl',
  kind: 'parser',
  what: 'packages/pki crl.ts parseCrl + verifyCrl, and describeCrl of gateway sync (PEM)',
  boundedRuns: 500,
  async open(scope) {
    const f = await fixtures(scope);
    const signed = f.crls.map((d) => parseCrl(d).tbs);
    return {
      arbitrary: bytesFor(f.crls),
      check: (input) => {
        expectOnly(isPki, 'CRL parser', () => {
          const c = parseCrl(input);
          // A CRL that verifies must be the one the CA signed, byte for byte in its TBSCertList.
          if (verifyCrl(c, f.h.issuing) && !signed.some((t) => t.equals(c.tbs))) throw new FuzzViolation('a mutated TBSCertList passed verifyCrl');
        });
        expectOnly(isPki, 'gateway sync describeCrl', () => describeCrl(pemEncode('X509 CRL', input)));
      },
    };
  },
};

const certificate: FuzzTarget = {
  name: 'certificate',
  kind: 'parser',
  what: 'packages/pki certificate.ts parseCertificate (client certificates at mTLS, chains from the server)',
  boundedRuns: 400,
  async open(scope) {
    const f = await fixtures(scope);
    return { arbitrary: bytesFor(f.certs), check: (input) => expectOnly(isPki, 'certificate parser', () => parseCertificate(input)) };
  },
};

const ocspResponse: FuzzTarget = {
  name: 'ocsp-response',
  kind: 'parser',
  what: 'packages/pki ocsp.ts parseOcspResponse (what clients and the agent read)',
  boundedRuns: 300,
  async open(scope) {
    const f = await fixtures(scope);
    const answers = await Promise.all(
      f.ocspRequests.map(async (r) => (await f.h.app.inject({ method: 'POST', url: PATHS.ocsp, headers: { 'content-type': MEDIA_TYPES.ocspRequest }, payload: r })).rawPayload),
    );
    return { arbitrary: bytesFor(answers), check: (input) => expectOnly(isPki, 'OCSP response parser', () => parseOcspResponse(input)) };
  },
};

// ------------------------------------------------------------------ schemas

/** The WebSocket message path of both servers' sockets: readWsMessage with the compiled schemas. */
const wsMessages: FuzzTarget = {
  name: 'ws-messages',
  kind: 'parser',
  what: 'readWsMessage with AgentMessage (/v1/agent) and GatewaySubscribe (/v1/events); GatewayEvent and ServerMessage checks (gateway sync, agent)',
  boundedRuns: 500,
  async open() {
    const agent = TypeCompiler.Compile(AgentMessage);
    const subscribe = TypeCompiler.Compile(GatewaySubscribe);
    const checks = [TypeCompiler.Compile(GatewayEvent), TypeCompiler.Compile(ServerMessage)];
    const templates: Array<Record<string, unknown>> = [
      { type: 'hello', protocolVersion: 1, agentVersion: '0.1.0', facts: FACTS },
      { type: 'status', serial: '0a1b2c3d4e5f60718293', notAfter: '2026-03-01T12:00:00.000Z', keystore: 'file' },
      { type: 'heartbeat', seq: 1 },
      { type: 'subscribe', since: '12' },
      { type: 'revocation', cursor: '3', deviceId: '6f1c2a4e-0b7d-4c2e-9a51-3d2f8e7b1c90', crlNumber: '7', issuer: 'issuing', reason: 'keyCompromise', at: '2026-03-01T12:00:00.000Z' },
      { type: 'welcome', deviceId: '6f1c2a4e-0b7d-4c2e-9a51-3d2f8e7b1c90', heartbeatSeconds: 30 },
    ];
    return {
      arbitrary: jsonBytesFor(templates),
      check(input) {
        const readers: Array<[string, TypeCheck<TSchema>]> = [['AgentMessage', agent as unknown as TypeCheck<TSchema>], ['GatewaySubscribe', subscribe as unknown as TypeCheck<TSchema>]];
        for (const [name, check] of readers) {
          let closed: number | undefined;
          const ws = { close: (code: number) => void (closed = code) };
          let msg: unknown;
          try {
            msg = readWsMessage(ws, input, false, check, WS_CLOSE_CODES.protocolError);
          } catch (e) {
            throw new FuzzViolation(`readWsMessage(${name}) threw ${(e as Error).message}`, { cause: e });
          }
          if (msg === undefined && closed !== WS_CLOSE_CODES.protocolError) throw new FuzzViolation(`readWsMessage(${name}) refused a message without closing with protocolError`);
          if (msg !== undefined && (closed !== undefined || !check.Check(msg))) throw new FuzzViolation(`readWsMessage(${name}) passed on a message its schema refuses`);
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(input.toString());
        } catch {
          return;
        }
        for (const c of checks) {
          try {
            c.Check(parsed);
          } catch (e) {
            throw new FuzzViolation(`schema check threw ${(e as Error).message}`, { cause: e });
          }
        }
      },
    };
  },
};

// ------------------------------------------------------------------ endpoints

type Reply = { statusCode: number; body: string; headers: Record<string, unknown> };

/** No 5xx; a 4xx carries `{ error: { code, message } }`. */
function expectClean(what: string, r: Reply): void {
  if (r.statusCode >= 500) throw new FuzzViolation(`${what} answered ${r.statusCode}: ${r.body.slice(0, 300)}`);
  if (r.statusCode >= 400) {
    let e: { error?: { code?: unknown; message?: unknown } } | undefined;
    try {
      e = JSON.parse(r.body) as typeof e;
    } catch {
      /* checked below */
    }
    if (typeof e?.error?.code !== 'string' || typeof e.error.message !== 'string') throw new FuzzViolation(`${what} answered ${r.statusCode} without an error body: ${r.body.slice(0, 200)}`);
  }
}

/** Body encodings EST accepts: base64 (RFC 7030), raw DER, PEM. */
const estBodies = (ders: Buffer[]): fc.Arbitrary<Buffer> =>
  fc.tuple(bytesFor(ders), fc.constantFrom('base64', 'base64-lines', 'der', 'pem')).map(([d, enc]) => {
    if (enc === 'der') return d;
    if (enc === 'pem') return Buffer.from(pemEncode('CERTIFICATE REQUEST', d));
    const s = d.toString('base64');
    return Buffer.from(enc === 'base64' ? s : (s.match(/.{1,64}/g) ?? []).join('\r\n'));
  });

const estEnroll: FuzzTarget = {
  name: 'est-enroll',
  kind: 'endpoint',
  what: 'POST /.well-known/est/simpleenroll (bootstrap token) with mutated CSR bodies',
  boundedRuns: 250,
  async open(scope) {
    const f = await fixtures(scope);
    return {
      arbitrary: estBodies(f.csrs),
      async check(input) {
        const r = await within(
          f.h.app.inject({ method: 'POST', url: EST_PATHS.simpleenroll, headers: { 'content-type': MEDIA_TYPES.pkcs10, authorization: `Bearer ${f.token}` }, payload: input }),
          'simpleenroll',
        );
        expectClean('simpleenroll', r);
      },
    };
  },
};

/**
 * A re-enrollment as bytes: 2 bytes of client certificate length, the
 * client certificate (DER, what the TLS layer hands over), then the body.
 */
function encodeReenroll(cert: Buffer, body: Buffer): Buffer {
  const n = Buffer.alloc(2);
  n.writeUInt16BE(Math.min(cert.length, 0xffff));
  return Buffer.concat([n, cert.subarray(0, 0xffff), body]);
}

const estReenroll: FuzzTarget = {
  name: 'est-reenroll',
  kind: 'endpoint',
  what: 'POST /.well-known/est/simplereenroll with mutated CSR bodies, and with mutated client certificates',
  boundedRuns: 250,
  async open(scope) {
    const f = await fixtures(scope);
    const certDer = f.device.cert.der;
    const good = b64(await csrWithFacts(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, JSON.stringify(FACTS)));
    return {
      arbitrary: fc.oneof(
        { weight: 3, arbitrary: estBodies(f.csrs).map((body) => encodeReenroll(certDer, body)) },
        // A TLS stack hands over only what it could parse, but not what our parser accepts: any bytes here.
        { weight: 1, arbitrary: bytesFor([certDer]).map((cert) => encodeReenroll(cert, Buffer.from(good))) },
      ),
      async check(input) {
        if (input.length < 2) return;
        const n = input.readUInt16BE(0);
        const cert = input.subarray(2, 2 + n);
        const body = input.subarray(2 + n);
        const r = await within(
          f.h.app.inject({ method: 'POST', url: EST_PATHS.simplereenroll, headers: { 'content-type': MEDIA_TYPES.pkcs10, ...(cert.length ? { [CLIENT_CERT_HEADER]: b64(cert) } : {}) }, payload: body }),
          'simplereenroll',
        );
        expectClean('simplereenroll', r);
      },
    };
  },
};

/**
 * Device facts as the agent sends them: any text in the facts attribute of
 * a CSR that is otherwise valid and correctly signed, so every input reaches
 * the facts validation, the device record and issuance.
 */
const facts: FuzzTarget = {
  name: 'facts',
  kind: 'endpoint',
  what: 'the CSR facts attribute through simpleenroll: signed CSRs whose facts JSON is mutated',
  boundedRuns: 150,
  async open(scope) {
    const f = await fixtures(scope);
    const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const factsObjects = fc.oneof(
      { weight: 4, arbitrary: mutatedObject(FACTS as unknown as Record<string, unknown>) },
      { weight: 2, arbitrary: fc.record({ os: mutatedObject(FACTS.os as unknown as Record<string, unknown>) }).map((o) => ({ ...FACTS, ...o })) },
      { weight: 2, arbitrary: fc.tuple(fc.constantFrom('hostname', 'userEmail', 'agentVersion', 'hardwareId', 'arch'), nastyString).map(([k, v]) => ({ ...FACTS, [k]: v })) },
      { weight: 1, arbitrary: anyJson },
    );
    return {
      arbitrary: fc.oneof({ weight: 4, arbitrary: factsObjects.map((o) => Buffer.from(JSON.stringify(o) ?? 'null')) }, { weight: 1, arbitrary: jsonBytesFor([FACTS as unknown as Record<string, unknown>]) }),
      async check(input) {
        const json = input.toString('utf8');
        const body = b64(await csrWithFacts(key, json));
        const r = await within(
          f.h.app.inject({ method: 'POST', url: EST_PATHS.simpleenroll, headers: { 'content-type': MEDIA_TYPES.pkcs10, authorization: `Bearer ${f.token}` }, payload: body }),
          'simpleenroll with facts',
        );
        expectClean('simpleenroll with facts', r);
      },
    };
  },
};

const ocspHttp: FuzzTarget = {
  name: 'ocsp-http',
  kind: 'endpoint',
  what: 'POST /ocsp and GET /ocsp/<base64> (RFC 6960 Appendix A) with mutated requests',
  boundedRuns: 300,
  async open(scope) {
    const f = await fixtures(scope);
    const answers = (what: string, r: Reply): void => {
      expectClean(what, r);
      if (r.statusCode !== 200) return;
      let status: string;
      try {
        status = parseOcspResponse(Buffer.from(r.body, 'latin1')).status;
      } catch (e) {
        throw new FuzzViolation(`${what} answered 200 with a body that is no OCSP response: ${(e as Error).message}`);
      }
      if (!['successful', 'malformedRequest', 'unauthorized'].includes(status)) throw new FuzzViolation(`${what} answered OCSP status ${status}`);
    };
    const inject = (opts: InjectOptions, what: string) =>
      within(f.h.app.inject(opts), what).then((r) => answers(what, { statusCode: r.statusCode, body: r.rawPayload.toString('latin1'), headers: r.headers }));
    return {
      arbitrary: bytesFor(f.ocspRequests),
      async check(input) {
        await inject({ method: 'POST', url: PATHS.ocsp, headers: { 'content-type': MEDIA_TYPES.ocspRequest }, payload: input }, 'POST /ocsp');
        await inject({ method: 'GET', url: `${PATHS.ocsp}/${encodeURIComponent(input.toString('base64'))}` }, 'GET /ocsp');
        const raw = input.toString('latin1');
        if (/^[\x21-\x7e]{1,2000}$/.test(raw) && !/[?#]/.test(raw)) await inject({ method: 'GET', url: `${PATHS.ocsp}/${raw}` }, 'GET /ocsp (raw path)');
      },
    };
  },
};

// ------------------------------------------------------------------ admin API

interface AdminRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: Record<string, unknown>;
  query?: Record<string, unknown>;
}

const ADMIN_ROUTES: AdminRoute[] = [
  { method: 'POST', path: '/tokens', body: { uses: 3, ttl: '24h', group: 'default' } },
  { method: 'GET', path: '/tokens' },
  { method: 'DELETE', path: '/tokens/:id' },
  { method: 'GET', path: '/groups' },
  { method: 'PUT', path: '/groups/:name', body: { certLifetimeSeconds: 86400, requireApproval: false, attestation: 'tpm', requireRegisteredEk: true } },
  { method: 'POST', path: '/registered-devices', body: { ekHash: 'ab'.repeat(32), name: 'kiosk-1', group: 'default' } },
  { method: 'GET', path: '/registered-devices', query: { limit: 10, cursor: 'x' } },
  { method: 'DELETE', path: '/registered-devices/:id' },
  { method: 'GET', path: '/devices', query: { status: 'active', group: 'default', q: 'laptop', limit: 10, cursor: 'x' } },
  { method: 'GET', path: '/devices/online' },
  { method: 'GET', path: '/devices/:id' },
  { method: 'POST', path: '/devices/:id/approve' },
  { method: 'POST', path: '/devices/:id/revoke', body: { reason: 'superseded' } },
  { method: 'POST', path: '/devices/:id/renew-now' },
  { method: 'GET', path: '/audit', query: { limit: 5, before: 100, action: 'device.revoke', target: 'x' } },
  { method: 'POST', path: '/gateway-tokens', body: { name: 'gw-1' } },
  { method: 'GET', path: '/gateway-tokens' },
  { method: 'DELETE', path: '/gateway-tokens/:id' },
];

/**
 * An admin request as bytes: `METHOD URL\ncontent-type\n` then the body, so
 * that a violating request is one file in the corpus.
 */
export function encodeAdminRequest(method: string, url: string, contentType: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${method} ${url}\n${contentType}\n`), body]);
}

function decodeAdminRequest(b: Buffer): { method: string; url: string; contentType: string; body: Buffer } | undefined {
  const nl1 = b.indexOf(0x0a);
  const nl2 = nl1 < 0 ? -1 : b.indexOf(0x0a, nl1 + 1);
  if (nl2 < 0) return undefined;
  const m = /^(GET|POST|PUT|DELETE) (\/[\x21-\x7e]*)$/.exec(b.subarray(0, nl1).toString('latin1'));
  const contentType = b.subarray(nl1 + 1, nl2).toString('latin1');
  if (!m || !/^[\x20-\x7e]*$/.test(contentType)) return undefined;
  return { method: m[1]!, url: m[2]!, contentType, body: b.subarray(nl2 + 1) };
}

const admin: FuzzTarget = {
  name: 'admin',
  kind: 'endpoint',
  what: 'every /v1/admin route (admin token) with mutated JSON bodies, path parameters and query strings',
  boundedRuns: 500,
  async open(scope) {
    const f = await fixtures(scope);
    // A device of its own, so that revoking it does not change what the other targets see.
    const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const r = await f.h.app.inject({ method: 'POST', url: EST_PATHS.simpleenroll, headers: { 'content-type': MEDIA_TYPES.pkcs10, authorization: `Bearer ${f.token}` }, payload: b64(await csrWithFacts(key, JSON.stringify({ ...FACTS, hostname: 'admin-fuzz' }), 'admin-fuzz')) });
    if (r.statusCode !== 200) throw new Error(`admin fuzz device: ${r.statusCode} ${r.body}`);
    const list = JSON.parse((await f.h.app.inject({ method: 'GET', url: '/v1/admin/devices?q=admin-fuzz', headers: { authorization: `Bearer ${f.h.adminToken}` } })).body) as { items: Array<{ id: string }> };
    const ownId = list.items[0]!.id;
    const param = fc.oneof(fc.constant(ownId), fc.uuid(), nastyString.filter((s) => s.length < 300), fc.constantFrom('default', 'a'.repeat(64), 'a'.repeat(65)));
    const queryOf = (q: Record<string, unknown> | undefined) =>
      q
        ? fc.option(mutatedObject(q), { nil: undefined }).map((o) => {
            if (!o) return '';
            const sp = new URLSearchParams();
            for (const [k, v] of Object.entries(o)) sp.append(k, typeof v === 'string' ? v : JSON.stringify(v) ?? '');
            return `?${sp.toString()}`;
          })
        : fc.constant('');
    const request = fc.constantFrom(...ADMIN_ROUTES).chain((route) =>
      fc
        .tuple(
          // Lone surrogates cannot be URL-encoded; Buffer turns them into U+FFFD.
          fc.oneof(
            { weight: 9, arbitrary: param.map((p) => encodeURIComponent(Buffer.from(p, 'utf8').toString('utf8'))) },
            { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%E0%A4%A', '%00', '%C0%AF', '..', '%2e%2e%2f') },
          ),
          queryOf(route.query),
          route.body ? jsonBytesFor([route.body]) : fc.oneof(fc.constant(Buffer.alloc(0)), jsonBytesFor([{}])),
          fc.constantFrom('application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', ''),
        )
        .map(([p, q, body, ct]) => encodeAdminRequest(route.method, `/v1/admin${route.path.replace(/:(id|name)/, p || 'x')}${q}`, ct, body)),
    );
    return {
      arbitrary: request,
      async check(input) {
        const req = decodeAdminRequest(input);
        if (!req) return;
        const res = await within(
          f.h.app.inject({
            method: req.method as AdminRoute['method'],
            url: req.url,
            headers: { authorization: `Bearer ${f.h.adminToken}`, ...(req.contentType ? { 'content-type': req.contentType } : {}) },
            ...(req.body.length ? { payload: req.body } : {}),
          }),
          `${req.method} ${req.url.slice(0, 100)}`,
        );
        expectClean(`${req.method} ${req.url.slice(0, 100)}`, res);
      },
    };
  },
};

// ------------------------------------------------------------------ WebSocket endpoint

/**
 * `/v1/events` over a real socket: the fuzzed frame, then a valid
 * subscribe. Every connection must end with the server closing it as a
 * protocol error (4000: the fuzzed frame, or a second subscribe) or a frame
 * over the size limit (1009) — never 1011, an abnormal close or no close.
 */
const eventsSocket: FuzzTarget = {
  name: 'ws-events',
  kind: 'endpoint',
  what: 'the gateway event stream /v1/events on a listening server, one connection per case',
  boundedRuns: 150,
  async open(scope) {
    const f = await fixtures(scope);
    const created = await f.h.app.inject({ method: 'POST', url: '/v1/admin/gateway-tokens', headers: { authorization: `Bearer ${f.h.adminToken}` }, payload: { name: 'fuzz' } });
    const gwToken = (JSON.parse(created.body) as { token: string }).token;
    await f.h.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (f.h.app.server.address() as AddressInfo).port;
    const templates = [{ type: 'subscribe' }, { type: 'subscribe', since: '0' }, { type: 'subscribe', since: '1' }, { type: 'subscribe', since: '999999999999' }];
    return {
      arbitrary: fc.oneof({ weight: 5, arbitrary: jsonBytesFor(templates) }, { weight: 1, arbitrary: fc.integer({ min: 16 * 1024 - 8, max: 20 * 1024 }).map((n) => Buffer.from(JSON.stringify({ type: 'subscribe', since: 'x'.repeat(n) }))) }),
      check: (input) =>
        within(
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(`ws://127.0.0.1:${port}${PATHS.events}`, { headers: { authorization: `Bearer ${gwToken}` } });
            ws.on('open', () => {
              ws.send(input.toString('utf8'));
              ws.send(JSON.stringify({ type: 'subscribe' }));
            });
            ws.on('unexpected-response', (_req, res) => reject(new FuzzViolation(`/v1/events refused the upgrade with HTTP ${res.statusCode}`)));
            ws.on('error', () => undefined);
            ws.on('close', (code, reason) => {
              if (code === WS_CLOSE_CODES.protocolError || code === 1009) resolve();
              else reject(new FuzzViolation(`/v1/events closed with ${code} ${reason.toString()}`));
            });
          }),
          '/v1/events',
        ),
    } satisfies FuzzSession;
  },
};

/**
 * `/v1/agent` over real mTLS with an enrolled device's certificate: the
 * fuzzed frame, then a binary frame (always a protocol error). Every
 * connection must end with a protocol close (4000), an unsupported-version
 * close (4001, a hello of another protocol) or a frame over the size limit
 * (1009) — never 1011, an abnormal close or no close.
 */
const agentSocket: FuzzTarget = {
  name: 'ws-agent',
  kind: 'endpoint',
  what: 'the agent control channel /v1/agent over mTLS on a listening server, one connection per case',
  boundedRuns: 60,
  async open(scope) {
    const h = await harness(scope, scope.engine, { tls: true });
    if (!h) throw new Error(`the ws-agent target needs ${scope.engine}, which is not reachable`);
    const token = await createToken(h, { uses: 10 });
    const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const r = await enroll(h, token, await csrWithFacts(key, JSON.stringify(FACTS)));
    if (r.statusCode !== 200) throw new Error(`ws-agent device: ${r.statusCode} ${r.body}`);
    const cert = certFromBody(r.body);
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (h.app.server.address() as AddressInfo).port;
    const tls = { cert: pemEncode('CERTIFICATE', cert.der), key: key.export({ format: 'pem', type: 'pkcs8' }), ca: pemEncode('CERTIFICATE', h.root.der), rejectUnauthorized: false };
    const templates: Array<Record<string, unknown>> = [
      { type: 'hello', protocolVersion: 1, agentVersion: '0.1.0', facts: FACTS },
      { type: 'status', serial: cert.serialHex, notAfter: cert.notAfter.toISOString(), keystore: 'file' },
      { type: 'heartbeat', seq: 1 },
    ];
    return {
      arbitrary: fc.oneof(
        { weight: 4, arbitrary: jsonBytesFor(templates) },
        { weight: 2, arbitrary: fc.tuple(fc.constantFrom('hostname', 'userEmail', 'agentVersion', 'hardwareId', 'arch'), nastyString).map(([k, v]) => Buffer.from(JSON.stringify({ ...templates[0], facts: { ...FACTS, [k]: v } }))) },
      ),
      check: (input) =>
        within(
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(`wss://127.0.0.1:${port}${PATHS.agentChannel}`, tls);
            ws.on('open', () => {
              ws.send(input.toString('utf8'));
              ws.send(Buffer.from([0]), { binary: true });
            });
            ws.on('unexpected-response', (_req, res) => reject(new FuzzViolation(`/v1/agent refused the upgrade with HTTP ${res.statusCode}`)));
            ws.on('error', () => undefined);
            ws.on('close', (code, reason) => {
              if (code === WS_CLOSE_CODES.protocolError || code === WS_CLOSE_CODES.unsupportedVersion || code === 1009) resolve();
              else reject(new FuzzViolation(`/v1/agent closed with ${code} ${reason.toString()}`));
            });
          }),
          '/v1/agent',
        ),
    } satisfies FuzzSession;
  },
};

export const TARGETS: readonly FuzzTarget[] = [der, csr, ocsp, pkcs7, crl, certificate, ocspResponse, wsMessages, estEnroll, estReenroll, facts, ocspHttp, admin, eventsSocket, agentSocket];

export function targetNamed(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target "${name}"; targets: ${TARGETS.map((x) => x.name).join(', ')}`);
  return t;
}

