/**
 * Component logs: every line a component prints goes to
 * `<dataDir>/logs/<component>.log` and, when echoing, to our stdout with a
 * coloured `name |` prefix. Redis and Postgres write their log files
 * themselves; {@link tailFile} follows those for the terminal.
 */
import { closeSync, createWriteStream, openSync, readSync, statSync, type WriteStream } from 'node:fs';

const useColor = (): boolean => Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90, bold: 1 } as const;
export type Color = keyof typeof CODES;

/** Wraps `text` in an ANSI colour when stdout is a terminal (and NO_COLOR is unset). */
export function paint(color: Color, text: string): string {
  return useColor() ? `\u001b[${CODES[color]}m${text}\u001b[0m` : text;
}

/** Splits a byte stream into lines, keeping an unfinished last line for the next chunk. */
export class LineSplitter {
  private rest = '';
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    const text = this.rest + chunk.toString();
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    for (const l of lines) this.onLine(l.replace(/\r$/, ''));
  }

  flush(): void {
    if (this.rest) this.onLine(this.rest);
    this.rest = '';
  }
}

/** Where a component's lines end up. */
export interface LogTarget {
  /** Width the name is padded to in echoed lines, so the columns line up. */
  readonly prefixWidth: number;
  /** Copy lines to stdout. */
  readonly echo: boolean;
}

/**
 * A log file we write (Node services, nginx): lines appended as they come,
 * echoed with the component's prefix when asked to.
 */
export class ComponentLog {
  private readonly stream: WriteStream;
  private readonly out: LineSplitter;
  private readonly err: LineSplitter;

  constructor(
    readonly name: string,
    readonly file: string,
    private readonly color: Color,
    private readonly target: LogTarget,
  ) {
    this.stream = createWriteStream(file, { flags: 'a' });
    // A full disk must not crash the supervisor; the component keeps running.
    this.stream.on('error', () => undefined);
    this.out = new LineSplitter((l) => this.line(l));
    this.err = new LineSplitter((l) => this.line(l));
  }

  /** Raw output of the process. */
  stdout(chunk: Buffer): void {
    this.out.push(chunk);
  }

  stderr(chunk: Buffer): void {
    this.err.push(chunk);
  }

  /** A line of our own (start/exit markers), logged like the component's. */
  note(text: string): void {
    this.line(`--- ${new Date().toISOString()} ${text}`);
  }

  private line(text: string): void {
    this.stream.write(text + '\n');
    if (this.target.echo) echoLine(this.name, this.color, this.target.prefixWidth, text);
  }

  /** Writes what is pending and closes the file. */
  close(): Promise<void> {
    this.out.flush();
    this.err.flush();
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }
}

/** Prints `name | text` to stdout. */
export function echoLine(name: string, color: Color, width: number, text: string): void {
  process.stdout.write(`${paint(color, name.padEnd(width))} ${paint('gray', '|')} ${text}\n`);
}

/**
 * Follows a file another process appends to (from its current end), calling
 * `onLine` for each new line. Polling keeps it simple and portable; a quarter
 * second of delay does not matter for a terminal. Returns a stop function.
 */
export function tailFile(file: string, onLine: (line: string) => void, intervalMs = 250): () => void {
  let offset = size(file);
  const splitter = new LineSplitter(onLine);
  const buf = Buffer.alloc(64 * 1024);
  const poll = (): void => {
    const now = size(file);
    if (now < offset) offset = 0; // truncated or replaced
    if (now === offset) return;
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return;
    }
    try {
      while (offset < now) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, now - offset), offset);
        if (n <= 0) break;
        splitter.push(buf.subarray(0, n));
        offset += n;
      }
    } finally {
      closeSync(fd);
    }
  };
  const timer = setInterval(poll, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    poll();
    splitter.flush();
  };
}

function size(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The last `lines` lines of a file (read from its last 64 KiB), or a note why there are none. */
export function lastLines(file: string, lines = 20): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    return `(cannot read ${file}: ${(e as Error).message})`;
  }
  try {
    const total = statSync(file).size;
    const len = Math.min(total, 64 * 1024);
    const buf = Buffer.alloc(len);
    const n = readSync(fd, buf, 0, len, total - len);
    const text = buf.subarray(0, n).toString('utf8').trimEnd();
    return text ? text.split('\n').slice(-lines).join('\n') : '(log is empty)';
  } finally {
    closeSync(fd);
  }
}
