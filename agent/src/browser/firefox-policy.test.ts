/**
 * Firefox's policies.json and profiles.ini: latchkey merges its policy into
 * whatever the administrator has, takes out exactly what it added (and only
 * while it still holds latchkey's value), and refuses files it cannot read
 * or that are too big. profiles.ini as Firefox writes it (CRLF, Install
 * sections, relative and absolute paths). Real files in a temp dir.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AUTO_SELECT_PREF, MAX_POLICY_FILE, OS_CLIENT_CERTS_PREF, addFirefoxPolicy, installFirefoxPolicy, removeFirefoxPolicy, uninstallFirefoxPolicy, wantedPrefs } from './firefox-policy.js';
import { MAX_PROFILES, MAX_PROFILES_INI, findFirefoxProfiles, parseProfilesIni } from './firefox-profiles.js';
import { NSS_TOKEN_MODULE } from './nss-store.js';

const AUTO = { Value: 'Select Automatically', Status: 'locked' };

function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'latchkey-ff-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

describe('Firefox policies.json', () => {
  test('Linux wants only automatic selection; macOS and Windows also the OS client certificate module', () => {
    assert.deepEqual(wantedPrefs('linux'), { [AUTO_SELECT_PREF]: AUTO });
    for (const p of ['darwin', 'win32'] as const) assert.deepEqual(wantedPrefs(p), { [AUTO_SELECT_PREF]: AUTO, [OS_CLIENT_CERTS_PREF]: { Value: true, Status: 'locked' } });
  });

  test('merge keeps every other policy and preference, leaves an administrator value alone, and removal restores the document', () => {
    const admin = { policies: { DisableAppUpdate: true, Preferences: { 'browser.tabs.warnOnClose': { Value: false }, [OS_CLIENT_CERTS_PREF]: { Value: false, Status: 'locked' } }, SecurityDevices: { Add: { 'Smart card': '/usr/lib/opensc-pkcs11.so' } } }, extra: 1 };
    const { doc, added, kept } = addFirefoxPolicy(admin, { prefs: wantedPrefs('darwin'), tokenModule: '/usr/lib/softhsm/libsofthsm2.so' });
    assert.deepEqual(kept, [OS_CLIENT_CERTS_PREF], 'the administrator said false: left as it is');
    assert.deepEqual(added, { prefs: { [AUTO_SELECT_PREF]: AUTO }, securityDevice: { name: NSS_TOKEN_MODULE, module: '/usr/lib/softhsm/libsofthsm2.so' } });
    assert.deepEqual(doc, {
      policies: {
        DisableAppUpdate: true,
        Preferences: { 'browser.tabs.warnOnClose': { Value: false }, [OS_CLIENT_CERTS_PREF]: { Value: false, Status: 'locked' }, [AUTO_SELECT_PREF]: AUTO },
        SecurityDevices: { Add: { 'Smart card': '/usr/lib/opensc-pkcs11.so', [NSS_TOKEN_MODULE]: '/usr/lib/softhsm/libsofthsm2.so' } },
      },
      extra: 1,
    });
    assert.equal(admin.policies.Preferences[AUTO_SELECT_PREF as never], undefined, 'the input is not changed');
    const back = removeFirefoxPolicy(doc, added);
    assert.equal(back.removed, 2);
    assert.deepEqual(back.doc, admin);
  });

  test('an empty or missing file: latchkey makes the containers and removal takes them away again', () => {
    const { doc, added } = addFirefoxPolicy(undefined, { prefs: wantedPrefs('linux'), tokenModule: '/m.so' });
    assert.deepEqual(doc, { policies: { Preferences: { [AUTO_SELECT_PREF]: AUTO }, SecurityDevices: { Add: { [NSS_TOKEN_MODULE]: '/m.so' } } } });
    assert.deepEqual(removeFirefoxPolicy(doc, added).doc, { policies: {} });
  });

  test('removal leaves a value someone changed after latchkey set it', () => {
    const { doc, added } = addFirefoxPolicy({ policies: {} }, { prefs: wantedPrefs('linux') });
    (doc.policies as { Preferences: Record<string, unknown> }).Preferences[AUTO_SELECT_PREF] = { Value: 'Ask Every Time', Status: 'locked' };
    const r = removeFirefoxPolicy(doc, added);
    assert.equal(r.removed, 0);
    assert.deepEqual(r.doc, doc);
  });

  test('a document of the wrong shape is an error naming the file and what to do', () => {
    for (const bad of [[], 'x', { policies: [] }, { policies: { Preferences: 'x' } }, { policies: { SecurityDevices: { Add: [] } } }]) {
      assert.throws(
        () => addFirefoxPolicy(bad, { prefs: wantedPrefs('linux'), tokenModule: '/m.so' }, '/etc/firefox/policies/policies.json'),
        (e: Error) => /\/etc\/firefox\/policies\/policies\.json .*; fix the file \(it must be \{"policies": \{…\}\}\) or give another with --firefox-policy FILE/.test(e.message),
      );
    }
  });

  test('on disk: created 0644 with its directory, merged into an existing file, removed again only if latchkey made it', async (t) => {
    const d = tmp(t);
    const fresh = join(d, 'etc', 'firefox', 'policies', 'policies.json');
    const r = await installFirefoxPolicy(fresh, { prefs: wantedPrefs('linux') });
    assert.equal(r.added.created, true);
    assert.equal(statSync(fresh).mode & 0o777, 0o644, 'every user runs Firefox');
    assert.deepEqual(JSON.parse(readFileSync(fresh, 'utf8')), { policies: { Preferences: { [AUTO_SELECT_PREF]: AUTO } } });
    const again = await installFirefoxPolicy(fresh, { prefs: wantedPrefs('linux') });
    assert.deepEqual(again.added.prefs, {}, 'a second enable adds nothing');
    assert.equal(await uninstallFirefoxPolicy(r.added), 1);
    assert.equal(existsSync(fresh), false, 'latchkey made it, nothing else is in it: gone');

    const existing = join(d, 'policies.json');
    const text = '{"policies": {"DisableTelemetry": true}}';
    writeFileSync(existing, text);
    const r2 = await installFirefoxPolicy(existing, { prefs: wantedPrefs('linux') });
    assert.equal(r2.added.created, false);
    assert.equal(await uninstallFirefoxPolicy(r2.added), 1);
    assert.deepEqual(JSON.parse(readFileSync(existing, 'utf8')), JSON.parse(text));
    assert.equal(await uninstallFirefoxPolicy(r2.added), 0, 'nothing of latchkey left to remove');
  });

  test('a file that is not JSON, too big, or a directory is refused and left as it is', async (t) => {
    const d = tmp(t);
    const broken = join(d, 'broken.json');
    writeFileSync(broken, '{"policies": {');
    await assert.rejects(installFirefoxPolicy(broken, { prefs: wantedPrefs('linux') }), /broken\.json is not valid JSON .*never overwrites a file it cannot read/);
    assert.equal(readFileSync(broken, 'utf8'), '{"policies": {');
    const big = join(d, 'big.json');
    writeFileSync(big, `{"policies": {}, "pad": "${'x'.repeat(MAX_POLICY_FILE)}"}`);
    await assert.rejects(installFirefoxPolicy(big, { prefs: wantedPrefs('linux') }), /big\.json is \d+ bytes, more than a policies\.json can be here/);
    mkdirSync(join(d, 'dir.json'));
    await assert.rejects(installFirefoxPolicy(join(d, 'dir.json'), { prefs: wantedPrefs('linux') }), /dir\.json is not a file/);
  });
});

describe('Firefox profiles.ini', () => {
  const ini = ['[General]', 'StartWithLastProfile=1', '', '[Profile1]', 'Name=work', 'IsRelative=0', 'Path=/srv/ff/work', '', '[Profile0]', 'Name=default', 'IsRelative=1', 'Path=abc.default-release', 'Default=1', '', '[Install4F96D1932A9F858E]', 'Default=abc.default-release', 'Path=not-a-profile', '', '[Profile2]', 'Name=dup', 'IsRelative=1', 'Path=abc.default-release', ''].join('\r\n');

  test('relative and absolute paths, CRLF, Install sections ignored, duplicates once', () => {
    assert.deepEqual(parseProfilesIni(ini, '/home/u/.mozilla/firefox'), ['/srv/ff/work', '/home/u/.mozilla/firefox/abc.default-release']);
  });

  test('IsRelative=0 with a relative path is still taken under the root', () => {
    assert.deepEqual(parseProfilesIni('[Profile0]\nIsRelative=0\nPath=rel/dir\n', '/r'), ['/r/rel/dir']);
  });

  test(`more than ${MAX_PROFILES} profiles is refused with what to do`, () => {
    const many = Array.from({ length: MAX_PROFILES + 1 }, (_, i) => `[Profile${i}]\nIsRelative=1\nPath=p${i}\n`).join('\n');
    assert.throws(() => parseProfilesIni(many, '/r'), /names 65 profiles, more than the 64 latchkey handles; name the ones to use with --firefox-profile DIR/);
  });

  test('found on disk under HOME: only directories that exist, the snap root too; an oversized profiles.ini is refused', async (t) => {
    const home = tmp(t);
    const deb = join(home, '.mozilla', 'firefox');
    const snap = join(home, 'snap', 'firefox', 'common', '.mozilla', 'firefox');
    mkdirSync(join(deb, 'a.default'), { recursive: true });
    mkdirSync(join(snap, 'b.default'), { recursive: true });
    writeFileSync(join(deb, 'profiles.ini'), '[Profile0]\nIsRelative=1\nPath=a.default\n[Profile1]\nIsRelative=1\nPath=missing\n');
    writeFileSync(join(snap, 'profiles.ini'), '[Profile0]\nIsRelative=1\nPath=b.default\n');
    assert.deepEqual(await findFirefoxProfiles('linux', { HOME: home }), [join(deb, 'a.default'), join(snap, 'b.default')]);
    assert.deepEqual(await findFirefoxProfiles('linux', { HOME: join(home, 'nobody') }), []);
    writeFileSync(join(deb, 'profiles.ini'), `[Profile0]\nPath=a.default\n;${'x'.repeat(MAX_PROFILES_INI)}\n`);
    await assert.rejects(findFirefoxProfiles('linux', { HOME: home }), /profiles\.ini is \d+ bytes, more than a profiles\.ini can be/);
  });
});
