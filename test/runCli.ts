/** The command line run in-process for tests: `main(argv)` with an Io that collects what it printed. */
import { main } from '../src/cli.js';
import type { Io } from '../src/cli/format.js';

/** Runs `main` in-process and collects what it printed. */
export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (t) => void (out += t), err: (t) => void (err += t), isTTY: false };
  const code = await main(argv, io);
  return { code, out, err };
}
