/**
 * Version of the agent ↔ server wire contract. It is bumped only on
 * incompatible changes (a field removed or retyped, a message's meaning
 * changed); adding an optional field to a server → client message is not one.
 */
export const PROTOCOL_VERSION = 1;

/** Header both sides send with REST requests and responses (lower case, as Node reports headers). */
export const PROTOCOL_VERSION_HEADER = 'latchkey-protocol-version';
