/**
 * Both command lines through their real binaries (issue 11 "Command
 * lines"): --help with options and an example on every command, typo
 * suggestions, enumerations that list their values, --json stdout that is
 * only JSON, a secret alone on stdout, `groups set` that changes only what
 * it is given, and expected failures as one line (the stack with --debug).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REVOKE_REASONS } from '@latchkey/protocol';
import { startPrivateBus } from '../../agent/test-support/dist/keyring-fixture.js';
import { softhsmToken } from '../../agent/test-support/dist/pkcs11-fixtures.js';
import { AGENT_CLI, SERVER_CLI, cli, freePort, initServer, run, startServer, tempDir, type Run } from './support/processes.js';

const agent = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> => run(process.execPath, [AGENT_CLI, ...args], { env });
const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

/** Every command reachable from `--help`, depth first: its words and its help text. */
async function crawl(bin: (args: string[]) => Promise<Run>, path: string[] = []): Promise<{ path: string[]; help: Run }[]> {
  const help = await bin([...path, '--help']);
  const section = /\nCommands:\n([\s\S]*?)(?:\n\n|$)/.exec(help.stdout)?.[1] ?? '';
  const children = [...section.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
  const below = await Promise.all(children.map((c) => crawl(bin, [...path, c])));
  return [{ path, help }, ...below.flat()];
}

function assertOneLine(r: Run, what: string): void {
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${what}: one line on stderr, got ${JSON.stringify(r.stderr)}`);
  assert.doesNotMatch(r.stderr, STACK_LINE, `${what}: no stack trace`);
  assert.doesNotMatch(r.stderr, /unexpected error/, what);
}

describe('command lines: help and usage errors', () => {
  for (const [name, bin] of [
    ['latchkey-server', (a: string[]) => cli(a)],
    ['latchkey', (a: string[]) => agent(a)],
  ] as const) {
    test(`${name}: --help on every command and group exits 0 with its options and an example`, { timeout: 120_000 }, async () => {
      const all = await crawl(bin);
      assert.ok(all.length > (name === 'latchkey' ? 12 : 20), `found ${all.map((c) => c.path.join(' ')).join(', ')}`);
      for (const { path, help } of all) {
        const what = `${name} ${path.join(' ')} --help`;
        assert.equal(help.code, 0, `${what}: ${help.stderr}`);
        assert.match(help.stdout, /^Usage: /, what);
        assert.match(help.stdout, /\nOptions:\n[\s\S]*--help/, what);
        if (path.length) assert.match(help.stdout, new RegExp(`\\nExamples:\\n {2}(\\S+=\\$\\()?${name} ${path.join(' ')}\\b`), `${what} shows an example of itself:\n${help.stdout}`);
      }
      if (name === 'latchkey') {
        assert.doesNotMatch(all[0]!.help.stdout, /_channel/, 'internal commands stay out of --help');
        assert.equal((await bin(['_channel', '--help'])).code, 0, 'and are routed');
      }
    });
  }

  test('a typo in an option or a command gets a suggestion and exit 2, never parseArgs text', async () => {
    const option = await cli(['token', 'list', '--datadir', '/tmp/x']);
    assert.equal(option.code, 2);
    assert.match(option.stderr, /^latchkey-server: unknown option '--datadir' \(did you mean --data-dir\?\)\n\(see latchkey-server token list --help\)\n$/);
    const command = await cli(['devices', 'revkoe', 'x']);
    assert.equal(command.code, 2);
    assert.match(command.stderr, /unknown command 'revkoe' \(did you mean revoke\?\)/);
    const agentOption = await agent(['enroll', '--sever', 'https://x:1']);
    assert.equal(agentOption.code, 2);
    assert.match(agentOption.stderr, /^latchkey: unknown option '--sever' \(did you mean --server\?\)/);
    const agentCommand = await agent(['enrol']);
    assert.equal(agentCommand.code, 2);
    assert.match(agentCommand.stderr, /unknown command 'enrol' \(did you mean enroll\?\)/);
    for (const r of [option, command, agentOption, agentCommand]) assert.doesNotMatch(r.stderr, /ERR_PARSE_ARGS|TypeError|Unknown option '/);
  });

  test('devices revoke --reason stolen names every reason once; exit 2 before anything is sent', async () => {
    const r = await cli(['devices', 'revoke', '0b6f7a3e-0000-4000-8000-000000000000', '--reason', 'stolen', '--server', 'https://127.0.0.1:1'], { env: { LATCHKEY_ADMIN_TOKEN: 'x' } });
    assert.equal(r.code, 2);
    assert.ok(r.stderr.includes(`Allowed choices are ${REVOKE_REASONS.join(', ')}.`), r.stderr);
    assert.doesNotMatch(r.stderr, /must be equal to constant|cannot reach/);
    const ks = await agent(['enroll', '--keystore', 'tpm']);
    assert.equal(ks.code, 2);
    assert.match(ks.stderr, /Allowed choices are os, pkcs11, file\./);
  });
});

describe('the agent config through the binary', () => {
  test('--config FILE sets the state dir; LATCHKEY_STATE_DIR and --state-dir win over it; a bad file is one line and exit 2', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'latchkey.json');
    writeFileSync(file, JSON.stringify({ stateDir: join(dir, 'from-file') }));
    const stateDir = async (args: string[], env: NodeJS.ProcessEnv = {}) => (JSON.parse((await agent([...args, 'status', '--json'], { LATCHKEY_STATE_DIR: undefined, ...env })).stdout) as { stateDir: string }).stateDir;
    assert.equal(await stateDir(['--config', file]), join(dir, 'from-file'));
    assert.equal(await stateDir([], { LATCHKEY_CONFIG: file }), join(dir, 'from-file'));
    assert.equal(await stateDir(['--config', file], { LATCHKEY_STATE_DIR: join(dir, 'from-env') }), join(dir, 'from-env'));
    assert.equal(await stateDir(['--config', file, '--state-dir', join(dir, 'from-flag')], { LATCHKEY_STATE_DIR: join(dir, 'from-env') }), join(dir, 'from-flag'));
    writeFileSync(file, JSON.stringify({ statedir: '/x' }));
    const bad = await agent(['--config', file, 'status']);
    assert.equal(bad.code, 2);
    assertOneLine(bad, 'a config file with an unknown key');
    assert.match(bad.stderr, /unknown key "statedir"/);
  });
});

describe('command lines against a running server', () => {
  test('--json stdout is only JSON; token create without --json puts only the secret on stdout; groups set keeps the settings it is not given', { timeout: 120_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    await startServer(t, dataDir, port);
    const d = ['--data-dir', dataDir];
    for (const args of [['token', 'create', '--json'], ['token', 'list', '--json'], ['groups', 'list', '--json'], ['devices', 'list', '--json'], ['devices', 'online', '--json'], ['audit', 'list', '--json'], ['gateway', 'token', 'create', '--name', 'gw', '--json'], ['groups', 'set', 'cli', '--lifetime', '1h', '--json']]) {
      const r = await cli([...args, ...d]);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.doesNotThrow(() => JSON.parse(r.stdout), `${args.join(' ')} --json: ${r.stdout}`);
    }

    // TOKEN=$(latchkey-server token create …), as the README shows it.
    const sh = await run('sh', ['-c', 'TOKEN=$("$0" "$1" token create --data-dir "$2") && printf "[%s]" "$TOKEN"', process.execPath, SERVER_CLI, dataDir]);
    assert.equal(sh.code, 0, sh.stderr);
    assert.match(sh.stdout, /^\[lk_enr_[A-Za-z0-9_-]+\]$/);
    assert.match(sh.stderr, /^token [0-9a-f-]{36}: group default, 1 use\(s\), expires \S+; shown once, store it now\n$/);
    const gw = await run('sh', ['-c', 'T=$("$0" "$1" gateway token create --name edge --data-dir "$2") && printf "[%s]" "$T"', process.execPath, SERVER_CLI, dataDir]);
    assert.match(gw.stdout, /^\[lkg_[A-Za-z0-9_-]+\]$/);

    const group = async (): Promise<unknown> => ((JSON.parse((await cli(['groups', 'list', '--json', ...d])).stdout) as { items: { name: string }[] }).items.find((g) => g.name === 'cli'));
    assert.equal((await cli(['groups', 'set', 'cli', '--lifetime', '1h', '--require-approval', ...d])).code, 0);
    const lifetimeOnly = await cli(['groups', 'set', 'cli', '--lifetime', '2h', ...d]);
    assert.equal(lifetimeOnly.code, 0, lifetimeOnly.stderr);
    assert.match(lifetimeOnly.stdout, /group cli: certificates for 7200 s, approval required/);
    assert.deepEqual(await group(), { name: 'cli', certLifetimeSeconds: 7200, requireApproval: true, attestation: 'none', requireRegisteredEk: false }, '--lifetime alone keeps approval on');
    assert.equal((await cli(['groups', 'set', 'cli', '--no-require-approval', ...d])).code, 0);
    assert.deepEqual(await group(), { name: 'cli', certLifetimeSeconds: 7200, requireApproval: false, attestation: 'none', requireRegisteredEk: false }, '--no-require-approval turns it off and keeps the lifetime');
    const nothing = await cli(['groups', 'set', 'cli', ...d]);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /changes nothing/);
    const newGroup = await cli(['groups', 'set', 'fresh', '--require-approval', ...d]);
    assert.equal(newGroup.code, 1);
    assert.match(newGroup.stderr, /group fresh does not exist yet/);

    // The agent with the OS keystore and no D-Bus session: one line that says what to do.
    const token = (JSON.parse((await cli(['token', 'create', '--json', ...d])).stdout) as { token: string }).token;
    const env = { DBUS_SESSION_BUS_ADDRESS: undefined, DISPLAY: undefined };
    const noBus = await agent(['--state-dir', join(tempDir(t), 'agent'), 'enroll', '--server', `https://127.0.0.1:${port}`, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'os'], env);
    assert.equal(noBus.code, 1, noBus.stderr);
    assertOneLine(noBus, 'enroll --keystore os without D-Bus');
    assert.match(noBus.stderr, /^latchkey: .*(D-Bus|keytar).*--keystore file/);
  });

  test('a locked keyring, a wrong PKCS#11 token label and a wrong PIN: one line each that says what to do, exit 1', { timeout: 120_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    await startServer(t, dataDir, port);
    const enroll = async (args: string[], env: NodeJS.ProcessEnv): Promise<Run> => {
      const token = (JSON.parse((await cli(['token', 'create', '--json', '--data-dir', dataDir])).stdout) as { token: string }).token;
      return agent(['--state-dir', join(tempDir(t), 'agent'), 'enroll', '--server', `https://127.0.0.1:${port}`, '--token', token, '--ca-fingerprint', fingerprint, ...args], env);
    };
    const cases: [string, () => Promise<Run | string>, RegExp][] = [
      [
        'a locked keyring',
        async () => {
          const bus = await startPrivateBus(t);
          if (typeof bus === 'string') return bus;
          await bus.lock();
          return enroll(['--keystore', 'os'], { ...bus.env, LATCHKEY_STATE_DIR: undefined });
        },
        /^latchkey: the login keyring is locked .*: unlock it/,
      ],
      [
        'a wrong token label',
        async () => {
          const tok = await softhsmToken(t);
          if (typeof tok === 'string') return tok;
          return enroll(['--keystore', 'pkcs11', '--pkcs11-module', tok.module, '--pkcs11-token', 'no-such-token'], { ...tok.env, LATCHKEY_PKCS11_PIN: tok.pin });
        },
        /^latchkey: .*no-such-token/,
      ],
      [
        'a wrong PIN',
        async () => {
          const tok = await softhsmToken(t);
          if (typeof tok === 'string') return tok;
          return enroll(['--keystore', 'pkcs11', '--pkcs11-module', tok.module, '--pkcs11-token', tok.tokenLabel], { ...tok.env, LATCHKEY_PKCS11_PIN: '0000' });
        },
        /^latchkey: .*(PIN|pin)/,
      ],
    ];
    for (const [what, make, expected] of cases) {
      const r = await make();
      if (typeof r === 'string') {
        if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(`${what}: ${r}`);
        t.diagnostic(`${what}: skipped, ${r}`);
        continue;
      }
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      assertOneLine(r, what);
      assert.match(r.stderr, expected, what);
    }
  });

  test('server unreachable: one line and exit 1; --debug adds the stack', { timeout: 60_000 }, async (t) => {
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const admin = await cli(['token', 'list', '--server', url], { env: { LATCHKEY_ADMIN_TOKEN: 'x' } });
    assert.equal(admin.code, 1);
    assertOneLine(admin, 'latchkey-server token list');
    assert.match(admin.stderr, new RegExp(`^latchkey-server: cannot reach ${url}: .*ECONNREFUSED.*; is latchkey-server running there\\?\\n$`));
    const adminDebug = await cli(['token', 'list', '--server', url, '--debug'], { env: { LATCHKEY_ADMIN_TOKEN: 'x' } });
    assert.equal(adminDebug.code, 1);
    assert.match(adminDebug.stderr, STACK_LINE);

    const stateDir = join(tempDir(t), 'agent');
    const enroll = ['--state-dir', stateDir, 'enroll', '--server', url, '--token', 'lk_enr_x', '--keystore', 'file'];
    const a = await agent(enroll);
    assert.equal(a.code, 1);
    assertOneLine(a, 'latchkey enroll');
    assert.match(a.stderr, new RegExp(`^latchkey: cannot reach ${url}: ECONNREFUSED\\n$`));
    const aDebug = await agent([...enroll, '--debug']);
    assert.equal(aDebug.code, 1);
    assert.match(aDebug.stderr, STACK_LINE);
  });
});
