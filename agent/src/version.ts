/** The agent's version, reported in device facts and `latchkey --version`. */
export const AGENT_VERSION = '0.1.0';
