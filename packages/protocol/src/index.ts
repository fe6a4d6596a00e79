/** @latchkey/protocol: the wire contract shared by the Latchkey agent, server and gateways. */
export * from './version.js';
export * from './est.js';
export * from './errors.js';
export * from './facts.js';
export * from './admin.js';
export * from './console.js';
export * from './auth.js';
export * from './attestation.js';
export * from './ws.js';
export { TIMESTAMP_PATTERN, UUID_PATTERN, SERIAL_PATTERN } from './common.js';
export * from './host-port.js';
