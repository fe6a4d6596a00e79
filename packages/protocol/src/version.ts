/** Version of the agent ↔ server wire contract; bumped on incompatible changes. */
export const PROTOCOL_VERSION = 1;
/** Header both sides send with REST requests and responses. */
export const PROTOCOL_VERSION_HEADER = 'latchkey-protocol-version';
