/**
 * Issue 14, inventory: devices registered in advance by their TPM's EK — by
 * EK certificate (hash of its public key, cross-checked with openssl) or by
 * hash; duplicates refused; a CSV import is all or nothing and names the bad
 * line; bounded in rows and bytes; paged list; delete. Both engines.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { RegisteredDevice } from '@latchkey/protocol';
import { ENGINES, adminCall, harness, type Harness } from '../testing/harness.js';

type Err = { error?: { code: string; message: string } };

/** An EK-like certificate (RSA 2048, no EKU) made by openssl, and the SHA-256 of its SPKI as openssl writes it. */
function opensslEkCert(): { pem: string; hash: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lk-ek-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-subj', '/CN=ek', '-days', '3650'], { stdio: 'ignore' });
  const spki = execFileSync('openssl', ['pkey', '-in', join(dir, 'k.pem'), '-pubout', '-outform', 'DER']);
  return { pem: readFileSync(join(dir, 'c.pem'), 'utf8'), hash: createHash('sha256').update(spki).digest('hex') };
}

const hex = (n: number): string => createHash('sha256').update(`ek-${n}`).digest('hex');

function importCsv(h: Harness, text: string | Buffer, contentType = 'text/csv') {
  return h.app.inject({ method: 'POST', url: '/v1/admin/registered-devices/import', headers: { authorization: `Bearer ${h.adminToken}`, 'content-type': contentType }, payload: text });
}

const count = async (h: Harness): Promise<number> => (await h.db.kysely.selectFrom('registered_devices').select('id').execute()).length;

for (const engine of ENGINES) {
  describe(`registered devices (EK inventory) on ${engine}`, () => {
    test('register by EK certificate and by hash; a duplicate is 409; list and delete; each change audited', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const ek = opensslEkCert();
      const byCert = await adminCall<RegisteredDevice & Err>(h, 'POST', '/v1/admin/registered-devices', { ekCertPem: ek.pem, name: 'kiosk-1' });
      assert.equal(byCert.status, 201, JSON.stringify(byCert.json));
      assert.equal(byCert.json.ekHash, ek.hash, 'the hash of the certified public key, as openssl computes it');
      assert.equal(byCert.json.hasEkCert, true);
      assert.equal(byCert.json.name, 'kiosk-1');
      assert.equal((await h.db.kysely.selectFrom('registered_devices').select('ek_cert').where('id', '=', byCert.json.id).executeTakeFirstOrThrow()).ek_cert, ek.pem.trim() + '\n');

      const again = await adminCall<Err>(h, 'POST', '/v1/admin/registered-devices', { ekHash: ek.hash.toUpperCase() });
      assert.equal(again.status, 409, 'the same EK by hash, in any case');
      assert.match(again.json.error!.message, /is registered already/);

      const byHash = await adminCall<RegisteredDevice>(h, 'POST', '/v1/admin/registered-devices', { ekHash: hex(1), group: 'default' });
      assert.equal(byHash.status, 201);
      assert.deepEqual([byHash.json.hasEkCert, byHash.json.manufacturer, byHash.json.group, byHash.json.usedByDevice], [false, null, 'default', null]);

      assert.equal((await adminCall<Err>(h, 'POST', '/v1/admin/registered-devices', { ekHash: hex(2), ekCertPem: ek.pem })).status, 400, 'not both');
      assert.equal((await adminCall<Err>(h, 'POST', '/v1/admin/registered-devices', { name: 'x' })).status, 400, 'one of them');
      const junk = await adminCall<Err>(h, 'POST', '/v1/admin/registered-devices', { ekCertPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' });
      assert.equal(junk.status, 400);
      assert.match(junk.json.error!.message, /EK certificate cannot be read.*or its EK hash instead/);
      const noGroup = await adminCall<Err>(h, 'POST', '/v1/admin/registered-devices', { ekHash: hex(3), group: 'nope' });
      assert.equal(noGroup.status, 404);
      assert.match(noGroup.json.error!.message, /group "nope" does not exist; create it with `latchkey-server groups set nope/);

      const list = await adminCall<{ items: RegisteredDevice[]; nextCursor: string | null }>(h, 'GET', '/v1/admin/registered-devices');
      assert.deepEqual(list.json.items.map((r) => r.ekHash).sort(), [ek.hash, hex(1)].sort());
      const del = await adminCall<RegisteredDevice>(h, 'DELETE', `/v1/admin/registered-devices/${byHash.json.id}`);
      assert.equal(del.status, 200);
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/registered-devices/${byHash.json.id}`)).status, 404);
      const audit = await h.db.kysely.selectFrom('audit').select('action').where('action', 'like', 'registered-device.%').orderBy('id').execute();
      assert.deepEqual(audit.map((a) => a.action), ['registered-device.create', 'registered-device.create', 'registered-device.delete']);
    });

    test('roles: a viewer lists, only an admin registers, imports or deletes', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const viewer = (await adminCall<{ token: string }>(h, 'POST', '/v1/admin/admin-tokens', { name: 'v', role: 'viewer' })).json.token;
      const operator = (await adminCall<{ token: string }>(h, 'POST', '/v1/admin/admin-tokens', { name: 'o', role: 'operator' })).json.token;
      assert.equal((await adminCall(h, 'GET', '/v1/admin/registered-devices', undefined, viewer)).status, 200);
      assert.equal((await adminCall(h, 'POST', '/v1/admin/registered-devices', { ekHash: hex(1) }, operator)).status, 403);
      const r = await h.app.inject({ method: 'POST', url: '/v1/admin/registered-devices/import', headers: { authorization: `Bearer ${operator}`, 'content-type': 'text/csv' }, payload: `a,${hex(1)}\n` });
      assert.equal(r.statusCode, 403);
      assert.equal(await count(h), 0);
    });

    test('CSV import: all rows or none, the bad line named; header and blank lines allowed; paging over the result', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const rows = Array.from({ length: 5 }, (_, i) => `host-${i},${hex(i)},default`);
      const bad = await importCsv(h, ['name,ek_hash,group', ...rows.slice(0, 3), 'host-x,not-a-hash', ...rows.slice(3)].join('\n'));
      assert.equal(bad.statusCode, 400);
      assert.match((JSON.parse(bad.body) as Err).error!.message, /^line 5: ek_hash must be 64 hexadecimal digits.*nothing was imported/);
      const unknownGroup = await importCsv(h, [...rows.slice(0, 2), `host-9,${hex(9)},ghosts`].join('\n'));
      assert.equal(unknownGroup.statusCode, 404);
      assert.match((JSON.parse(unknownGroup.body) as Err).error!.message, /^line 3: group "ghosts" does not exist/);
      const dupInFile = await importCsv(h, [rows[0], rows[1], rows[0]].join('\n'));
      assert.match((JSON.parse(dupInFile.body) as Err).error!.message, /^line 3: this ek_hash is already on line 1/);
      assert.equal(await count(h), 0, 'nothing was written by the refused imports');

      const ok = await importCsv(h, `\uFEFFname,ek_hash,group\r\n${rows.join('\r\n')}\r\n\r\n`);
      assert.equal(ok.statusCode, 201, ok.body);
      assert.deepEqual(JSON.parse(ok.body), { imported: 5 });
      assert.equal(await count(h), 5);

      const clash = await importCsv(h, `new-1,${hex(100)}\nagain,${hex(2).toUpperCase()}\n`);
      assert.equal(clash.statusCode, 409);
      assert.match((JSON.parse(clash.body) as Err).error!.message, /^line 2: the EK .* is registered already.*nothing was imported/);
      assert.equal(await count(h), 5, 'the new row of the clashing import was not kept');

      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { status: number; json: { items: RegisteredDevice[]; nextCursor: string | null } } = await adminCall(h, 'GET', `/v1/admin/registered-devices?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(page.status, 200);
        assert.ok(page.json.items.length <= 2);
        seen.push(...page.json.items.map((r) => r.ekHash));
        cursor = page.json.nextCursor;
      } while (cursor);
      assert.deepEqual(seen.sort(), rows.map((_, i) => hex(i)).sort());
      assert.equal((await adminCall(h, 'GET', '/v1/admin/registered-devices?cursor=zzz')).status, 400);
      const audit = await h.db.kysely.selectFrom('audit').select('details').where('action', '=', 'registered-device.import').execute();
      assert.deepEqual(audit.map((a) => JSON.parse(a.details)), [{ rows: 5 }]);
    });

    test('CSV import bounds: over 10,000 rows or over 1 MiB is 413; JSON is 415; 10,000 rows import', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const line = (i: number): string => `${hex(i)}`;
      const many = (n: number): string => Array.from({ length: n }, (_, i) => `,${line(i)}`).join('\n');
      const tooMany = await importCsv(h, many(10_001));
      assert.equal(tooMany.statusCode, 413);
      assert.match((JSON.parse(tooMany.body) as Err).error!.message, /more than 10000 rows/);
      const tooBig = await importCsv(h, Buffer.alloc(1024 * 1024 + 1, 'a'));
      assert.equal(tooBig.statusCode, 413);
      assert.equal((await importCsv(h, '{}', 'application/json')).statusCode, 415);
      assert.equal(await count(h), 0);
      const full = await importCsv(h, many(10_000));
      assert.equal(full.statusCode, 201, full.body);
      assert.equal(await count(h), 10_000);
    });
  });
}
