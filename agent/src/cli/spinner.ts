/** A one-line progress indicator on a terminal; plain lines elsewhere (logs, CI). */
export function spinner(out: NodeJS.WriteStream): { update: (text: string) => void; done: () => void } {
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let i = 0;
  let text = '';
  const tty = out.isTTY;
  const timer = tty ? setInterval(() => out.write(`\r${frames[i++ % frames.length]} ${text}\x1b[K`), 100) : undefined;
  return {
    update(t) {
      text = t;
      if (!tty) out.write(`${t}\n`);
    },
    done() {
      if (timer) {
        clearInterval(timer);
        out.write('\r\x1b[K');
      }
    },
  };
}
