/** Debian's `chromium` for the browser tests (playwright-core never downloads one), and how they launch it. */
import { execFileSync } from 'node:child_process';

/** The path of `chromium` on PATH, or null (the browser tests then skip, saying so). */
export function findChromium(): string | null {
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'];
