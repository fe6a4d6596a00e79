/**
 * The ceiling for bench:server: a trivial Node HTTPS server with the same
 * certificate and TLS settings as latchkey-server, answering every request
 * with a few bytes. Usage: node tls-ceiling-server.js KEY CERT PORT
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [key, cert, port] = process.argv.slice(2);
const server = createServer({ key: readFileSync(key!), cert: readFileSync(cert!), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (req, res) => {
  req.resume();
  req.on('end', () => res.end('ok'));
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
