/**
 * Big-endian TPM 2.0 marshalling (Part 2 §4, "canonical" form). The Reader
 * checks every length against what is left and against the structure's own
 * maximum, so a truncated, oversized or padded input is a TpmError naming
 * the field, never an out-of-range read.
 */
import { TpmError } from './errors.js';

export class Reader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  private take(n: number, field: string): Buffer {
    if (this.pos + n > this.buf.length) {
      throw new TpmError('TPM_MALFORMED', `${this.what}: truncated at ${field} (needs ${n} bytes at offset ${this.pos}, ${this.buf.length - this.pos} left)`);
    }
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  get offset(): number {
    return this.pos;
  }

  u8(field: string): number {
    return this.take(1, field).readUInt8(0);
  }
  u16(field: string): number {
    return this.take(2, field).readUInt16BE(0);
  }
  u32(field: string): number {
    return this.take(4, field).readUInt32BE(0);
  }
  u64(field: string): bigint {
    return this.take(8, field).readBigUInt64BE(0);
  }
  bytes(n: number, field: string): Buffer {
    return Buffer.from(this.take(n, field));
  }

  /** A TPM2B: a 16-bit size and that many bytes, at most `max`. */
  tpm2b(field: string, max: number): Buffer {
    const size = this.u16(`${field}.size`);
    if (size > max) throw new TpmError('TPM_MALFORMED', `${this.what}: ${field} is ${size} bytes; at most ${max} are allowed`);
    return this.bytes(size, field);
  }

  /** The bytes from `start` to the current position (to hash exactly what was read). */
  since(start: number): Buffer {
    return Buffer.from(this.buf.subarray(start, this.pos));
  }

  end(): void {
    if (this.pos !== this.buf.length) {
      throw new TpmError('TPM_MALFORMED', `${this.what}: ${this.buf.length - this.pos} trailing bytes after the structure`);
    }
  }
}

export class Writer {
  private parts: Buffer[] = [];
  u8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    return this.raw(b);
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return this.raw(b);
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return this.raw(b);
  }
  u64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    return this.raw(b);
  }
  raw(b: Uint8Array): this {
    this.parts.push(Buffer.from(b));
    return this;
  }
  tpm2b(b: Uint8Array): this {
    if (b.length > 0xffff) throw new TpmError('ARGUMENT_INVALID', `a TPM2B holds at most 65535 bytes, not ${b.length}`);
    return this.u16(b.length).raw(b);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A TPM2B of `b`: its 16-bit size, then the bytes. */
export const tpm2b = (b: Uint8Array): Buffer => new Writer().tpm2b(b).done();

/** Refuses inputs larger than `max` before any parsing (bounds what a client can make us read). */
export function checkSize(input: Uint8Array, max: number, what: string): Buffer {
  if (!(input instanceof Uint8Array)) throw new TpmError('ARGUMENT_INVALID', `${what}: expected bytes`);
  if (input.length > max) throw new TpmError('TPM_MALFORMED', `${what} is ${input.length} bytes; at most ${max} are accepted`);
  return Buffer.from(input.buffer, input.byteOffset, input.length);
}
