/**
 * The Ansible playbook of the README's rollout section
 * (deploy/ansible/latchkey-agent.yml), run for real with ansible-playbook
 * against this machine (`-i localhost, -c local`) into a temporary root: it
 * writes the enroll file and the 0600 token file without ever printing the
 * token, is idempotent, refuses bad settings, and the files it wrote enroll
 * a real agent with a real server. The package and service tasks need the
 * .deb and systemd: skipped by tag here, syntax-checked with the rest.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AGENT_CLI, ROOT, cli, initServer, requireTools, run, startServer, tempDir } from './support/processes.js';

const PLAYBOOK = join(ROOT, 'deploy/ansible/latchkey-agent.yml');

describe('Ansible: deploy/ansible/latchkey-agent.yml (issue 15)', () => {
  test('the whole playbook passes --syntax-check', { timeout: 120_000 }, async (t) => {
    if (!requireTools(t, 'ansible-playbook')) return;
    const r = await run('ansible-playbook', ['--syntax-check', '-i', 'localhost,', PLAYBOOK], { env: { ANSIBLE_NOCOLOR: '1' } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('the files tasks on this machine: a 0600 token file and the enroll file, the token never printed, idempotent; the agent enrolls from them', { timeout: 300_000 }, async (t) => {
    if (!requireTools(t, 'ansible-playbook')) return;
    const { dataDir, port, fingerprint } = await initServer(t);
    const s = await startServer(t, dataDir, port);
    const tr = await cli(['token', 'create', '--data-dir', dataDir, '--json']);
    assert.equal(tr.code, 0, tr.stderr);
    const { token } = JSON.parse(tr.stdout) as { token: string };
    const dir = tempDir(t, 'latchkey-ansible-');
    const root = join(dir, 'root');
    const me = userInfo();
    const group = (await run('id', ['-gn'])).stdout.trim();
    const env = { ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp'), ANSIBLE_REMOTE_TEMP: join(dir, 'ansible-tmp'), ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3', ANSIBLE_RETRY_FILES_ENABLED: '0' };
    // The settings as a vars file (0600), as ansible-vault would hold them: the token is never on a command line.
    const vars = (name: string, v: Record<string, unknown>): string => {
      const p = join(dir, `${name}.json`);
      writeFileSync(p, JSON.stringify({ latchkey_hosts: 'all', latchkey_become: false, latchkey_root: root, latchkey_owner: me.username, latchkey_group: group, ...v }), { mode: 0o600 });
      return p;
    };
    const good = vars('vars', { latchkey_server: s.url, latchkey_ca_fingerprint: fingerprint, latchkey_enroll_token: token, latchkey_keystore: 'file' });
    const play = (varsFile: string) => run('ansible-playbook', ['-i', 'localhost,', '-c', 'local', '-v', PLAYBOOK, '-e', `@${varsFile}`, '--skip-tags', 'package,service'], { env });

    const first = await play(good);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /localhost\s*: ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=0/);
    assert.ok(!first.stdout.includes(token) && !first.stderr.includes(token), 'no_log keeps the token out of the output');
    assert.match(first.stdout, /the output has been hidden due to the fact that 'no_log: true'/);

    const etc = join(root, 'etc/latchkey');
    const tokenFile = join(etc, 'enroll-token');
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    assert.equal(readFileSync(tokenFile, 'utf8'), `${token}\n`);
    assert.equal(statSync(join(etc, 'enroll.json')).mode & 0o777, 0o644);
    assert.deepEqual(JSON.parse(readFileSync(join(etc, 'enroll.json'), 'utf8')), { server: s.url, caFingerprint: fingerprint, keystore: 'file', tokenFile });

    const again = await play(good);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /localhost\s*: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0/, 'a second run changes nothing');

    // Bad settings stop before any file is touched, saying what to set.
    const bad = await play(vars('bad', { latchkey_server: 'http://plain.example.com', latchkey_ca_fingerprint: fingerprint, latchkey_enroll_token: token }));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout, /failed=1/);
    assert.ok(!bad.stdout.includes(token) && !bad.stderr.includes(token));

    // What the playbook wrote enrolls the agent (the service would run the same `latchkey run`).
    const stateDir = join(dir, 'state');
    const agent = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run', '--enroll-file', join(etc, 'enroll.json')], { stdio: 'ignore', env: { ...process.env, LATCHKEY_TOKEN: '', LATCHKEY_MANAGED_PREFERENCES: '' } });
    const exited = new Promise<number | null>((r) => agent.on('exit', (c) => r(c)));
    t.after(() => {
      if (agent.exitCode === null) agent.kill('SIGKILL');
    });
    const end = Date.now() + 60_000;
    let st: { enrolled: boolean; deviceId?: string } = { enrolled: false };
    while (Date.now() < end) {
      const r = await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status', '--json']);
      if (r.code === 0) st = JSON.parse(r.stdout) as typeof st;
      if (st.enrolled) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(st.enrolled, 'the agent enrolled from the playbook\'s files');
    const dl = await cli(['devices', 'list', '--data-dir', dataDir, '--json']);
    assert.deepEqual((JSON.parse(dl.stdout) as { items: { id: string }[] }).items.map((d) => d.id), [st.deviceId]);
    agent.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
