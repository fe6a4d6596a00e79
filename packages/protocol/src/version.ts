export { PROTOCOL_VERSION } from './wire.js';
