/**
 * A software TPM made like a shipped one: `swtpm_setup --create-ek-cert
 * --create-platform-cert` writes its EK certificates (signed by a
 * swtpm_localca CA in a temp dir) into NV, then swtpm serves it and
 * tpm2-tools talk to it directly over the swtpm TCTI (no resource manager:
 * `tools()` flushes transient objects after each command, as a
 * TPM holds only 3 loaded objects). Or a string naming what is missing.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AfterHook, type Pkcs11TestToken, SWTPM_TCTI_LIBS, firstExistingPath, hasCommand, startSwtpm, swtpmToken } from './pkcs11-fixtures.js';

export interface SwtpmWithEkCert {
  dir: string;
  env: Record<string, string>;
  /** swtpm_localca's root and issuing CA certificates (PEM paths). */
  rootCaPem: string;
  issuerCaPem: string;
  /** Runs a tpm2-tools command; returns stdout, or throws with stderr. */
  tools(cmd: string, args: string[], opts?: { input?: Buffer; allowFail?: boolean }): { code: number | null; stdout: Buffer; stderr: string };
}

/** A swtpm state dir made by `swtpm_setup --create-ek-cert --create-platform-cert` with a swtpm_localca CA of its own. */
export interface EkCertTpmState {
  dir: string;
  /** The swtpm state dir (serve it with startSwtpm). */
  stateDir: string;
  /** The CA's directory (it also holds the CA's keys). */
  caDir: string;
  rootCaPem: string;
  issuerCaPem: string;
}

export async function ekCertTpmState(t: AfterHook): Promise<EkCertTpmState | string> {
  for (const cmd of ['swtpm', 'swtpm_setup', 'swtpm_localca', 'tpm2_createek', 'tpm2_send']) {
    if (!hasCommand(cmd)) return `${cmd} (apt-get install swtpm swtpm-tools tpm2-tools)`;
  }
  if (!firstExistingPath(SWTPM_TCTI_LIBS)) return 'the swtpm TCTI (apt-get install libtss2-tcti-swtpm0)';
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-tpm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ca = join(dir, 'ca');
  mkdirSync(ca);
  mkdirSync(join(dir, 'state'));
  writeFileSync(join(dir, 'localca.conf'), `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`);
  writeFileSync(join(dir, 'localca.options'), '--platform-manufacturer Latchkey\n--platform-version 2.1\n--platform-model test\n');
  writeFileSync(
    join(dir, 'setup.conf'),
    `create_certs_tool = swtpm_localca\ncreate_certs_tool_config = ${join(dir, 'localca.conf')}\ncreate_certs_tool_options = ${join(dir, 'localca.options')}\nactive_pcr_banks = sha256\n`,
  );
  const setup = spawnSync('swtpm_setup', ['--tpm2', '--tpmstate', join(dir, 'state'), '--create-ek-cert', '--create-platform-cert', '--config', join(dir, 'setup.conf'), '--overwrite'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (setup.status !== 0) throw new Error(`swtpm_setup failed: ${(setup.stderr || setup.stdout).slice(-2000)}`);
  return { dir, stateDir: join(dir, 'state'), caDir: ca, rootCaPem: join(ca, 'swtpm-localca-rootca-cert.pem'), issuerCaPem: join(ca, 'issuercert.pem') };
}

export async function swtpmWithEkCert(t: AfterHook): Promise<SwtpmWithEkCert | string> {
  const made = await ekCertTpmState(t);
  if (typeof made === 'string') return made;
  const { dir } = made;
  const port = await startSwtpm(t, made.stateDir);
  const env = { TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` };
  const exec = (cmd: string, args: string[], input?: Buffer) => spawnSync(cmd, args, { cwd: dir, env: { ...process.env, ...env }, input, timeout: 60_000 });
  return {
    dir,
    env,
    rootCaPem: made.rootCaPem,
    issuerCaPem: made.issuerCaPem,
    tools(cmd, args, opts = {}) {
      const r = exec(cmd, args, opts.input);
      exec('tpm2_flushcontext', ['-t']);
      const out = { code: r.status, stdout: r.stdout, stderr: r.stderr?.toString() ?? r.error?.message ?? '' };
      if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${out.stderr.slice(-2000)}`);
      return out;
    },
  };
}

export type SwtpmTokenWithEkCert = Pkcs11TestToken & Omit<EkCertTpmState, 'dir' | 'stateDir'>;

/**
 * Both at once, as a shipped machine with a TPM is: a swtpm whose EK
 * certificates swtpm_setup wrote (ekCertTpmState) behind tpm2-abrmd, with a
 * tpm2-pkcs11 store and token on it (swtpmToken). `env` reaches the TPM for
 * tpm2-tools (TPM2TOOLS_TCTI), tpm2-pkcs11 and tpm2_ptool.
 */
export async function swtpmTokenWithEkCert(t: AfterHook, label = 'latchkey-tpm'): Promise<SwtpmTokenWithEkCert | string> {
  const made = await ekCertTpmState(t);
  if (typeof made === 'string') return made;
  const token = await swtpmToken(t, label, { tpmState: made.stateDir });
  if (typeof token === 'string') return token;
  return { ...token, caDir: made.caDir, rootCaPem: made.rootCaPem, issuerCaPem: made.issuerCaPem };
}

/** The persistent handle the helpers below put an AK at by default. */
export const AK_HANDLE = '0x81000101';

/** TPM2_MakeCredential's output, as @latchkey/tpm's makeCredential or the server's challenge gives it. */
export interface CredentialBlobs {
  credentialBlob: Uint8Array;
  encryptedSecret: Uint8Array;
}

/** The file tpm2_activatecredential -i reads: magic 0xBADCC0DE, version 1, then the two TPM2Bs. */
export function credentialFile(c: CredentialBlobs): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(0xbadcc0de, 0);
  head.writeUInt32BE(1, 4);
  return Buffer.concat([head, c.credentialBlob, c.encryptedSecret]);
}

/** TPM2_ActivateCredential with the AK at `akHandle` and the EK context `ekCtx` (an endorsement policy session). */
export function activate(tpm: SwtpmWithEkCert, ekCtx: string, c: CredentialBlobs, akHandle = AK_HANDLE): { ok: boolean; secret: Buffer; stderr: string } {
  writeFileSync(join(tpm.dir, 'cred.bin'), credentialFile(c));
  tpm.tools('tpm2_startauthsession', ['--policy-session', '-S', 'session.ctx']);
  try {
    tpm.tools('tpm2_policysecret', ['-S', 'session.ctx', '-c', 'e']);
    const r = tpm.tools('tpm2_activatecredential', ['-c', akHandle, '-C', ekCtx, '-i', 'cred.bin', '-o', 'secret.out', '-P', 'session:session.ctx'], { allowFail: true });
    return { ok: r.code === 0, secret: r.code === 0 ? readFileSync(join(tpm.dir, 'secret.out')) : Buffer.alloc(0), stderr: r.stderr };
  } finally {
    tpm.tools('tpm2_flushcontext', ['session.ctx'], { allowFail: true });
  }
}

/** TPM2_Certify (Part 3 §18.2) as raw bytes through tpm2_send: tpm2-tools 5.4's tpm2_certify cannot pass qualifying data. */
export function certify(tpm: SwtpmWithEkCert, keyHandle: number, akHandle: number, nonce: Buffer): { attest: Buffer; signature: Buffer } {
  const u16 = (v: number): Buffer => Buffer.from([v >> 8, v & 0xff]);
  const u32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return b;
  };
  const pw = Buffer.concat([u32(0x40000009), u16(0), Buffer.from([0]), u16(0)]); // TPM_RS_PW, empty auth
  const body = Buffer.concat([u32(keyHandle), u32(akHandle), u32(pw.length * 2), pw, pw, u16(nonce.length), nonce, u16(0x0010)]);
  const cmd = Buffer.concat([u16(0x8002), u32(10 + body.length), u32(0x148), body]);
  const out = tpm.tools('tpm2_send', [], { input: cmd }).stdout;
  const rc = out.readUInt32BE(6);
  if (rc !== 0) throw new Error(`TPM2_Certify returned 0x${rc.toString(16)}`);
  const paramSize = out.readUInt32BE(10);
  const attestLen = out.readUInt16BE(14);
  return { attest: out.subarray(16, 16 + attestLen), signature: out.subarray(16 + attestLen, 14 + paramSize) };
}

/** Creates a P-256 signing key under the owner primary `primary.ctx`, with the given attributes, persisted at `handle`; its TPM2B_PUBLIC. */
export function createKey(tpm: SwtpmWithEkCert, name: string, attributes: string, handle: string): Buffer {
  tpm.tools('tpm2_create', ['-C', 'primary.ctx', '-G', 'ecc256:ecdsa-sha256', '-a', attributes, '-u', `${name}.pub`, '-r', `${name}.priv`]);
  tpm.tools('tpm2_load', ['-C', 'primary.ctx', '-u', `${name}.pub`, '-r', `${name}.priv`, '-c', `${name}.ctx`]);
  tpm.tools('tpm2_evictcontrol', ['-C', 'o', '-c', `${name}.ctx`, handle]);
  return readFileSync(join(tpm.dir, `${name}.pub`));
}

/** ECDSA-SHA256 by the TPM key at `handle` (tpm2_sign -f plain writes the DER ECDSA-Sig-Value X.509 wants). */
export function tpmSign(tpm: SwtpmWithEkCert, handle: string, data: Uint8Array): Buffer {
  writeFileSync(join(tpm.dir, 'tbs.bin'), data);
  tpm.tools('tpm2_sign', ['-c', handle, '-g', 'sha256', '-s', 'ecdsa', '-f', 'plain', '-o', 'sig.bin', 'tbs.bin']);
  return readFileSync(join(tpm.dir, 'sig.bin'));
}
