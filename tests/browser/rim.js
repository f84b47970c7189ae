// The rim server of the browser tests: `rim serve` from RIM_BIN (default
// target/debug/rim; nothing here builds it) on a loopback port the OS picks,
// with a fresh database and an explicit config in a temporary directory, so
// that a rim.toml in the working directory cannot change what is tested;
// and the few steps every story takes with a person's page.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
const RIM_BIN = path.resolve(repo, process.env.RIM_BIN || 'target/debug/rim');

export class Server {
  /** `name` names its log, kept after it stops for a look after a failure:
   * target/browser-tests/<name>.log. */
  constructor(name) {
    this.name = name;
    this.log = [];
    this.base = '';
    this.dir = '';
    this.proc = null;
  }

  /** Starts rim with `config` (TOML text); resolves once it listens. */
  async start(config = '') {
    assert.ok(existsSync(RIM_BIN), `no rim binary at ${RIM_BIN}: run cargo build first (or set RIM_BIN)`);
    this.dir = await mkdtemp(path.join(tmpdir(), 'rim-browser-'));
    this.db = path.join(this.dir, 'rim.db');
    this.config = path.join(this.dir, 'rim.toml');
    await writeFile(this.config, `log_level = "info"\n${config}`);
    this.proc = spawn(RIM_BIN, ['serve', '--listen', '127.0.0.1:0', '--db', this.db, '--config', this.config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The OS picks the port; rim logs the address it listens on.
    this.base = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`rim did not start:\n${this.log.join('\n')}`)), 15_000);
      let buffered = '';
      const onData = (chunk) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop();
        for (const line of lines) {
          this.log.push(line);
          if (this.log.length > 400) this.log.shift();
          const m = / listening addr=(\S+)/.exec(line);
          if (m) {
            clearTimeout(timer);
            resolve(`http://${m[1]}`);
          }
        }
      };
      this.proc.stdout.setEncoding('utf8').on('data', onData);
      this.proc.stderr.setEncoding('utf8').on('data', onData);
      this.proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`rim exited with ${code}:\n${this.log.join('\n')}`));
      });
    });
    return this;
  }

  /** Runs another rim command on this server's database and config. */
  run(...args) {
    return new Promise((resolve, reject) => {
      const child = spawn(RIM_BIN, [...args, '--db', this.db, '--config', this.config], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
      child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`rim ${args.join(' ')} failed (${code}): ${out}`))));
    });
  }

  /** Calls the REST API directly (for what a test arranges or checks
   * outside the UI); answers the JSON wrapper. */
  async rest(method, route, token, body) {
    const res = await fetch(this.base + route, {
      method,
      headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return res.json();
  }

  async stop() {
    const logs = path.join(repo, 'target', 'browser-tests');
    await mkdir(logs, { recursive: true });
    await writeFile(path.join(logs, `${this.name}.log`), this.log.join('\n') + '\n');
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

// ---- the app's texts ----

/** A RegExp for the app's text of `key` in the language of `ui`, `params`
 * filled in, any value standing for the parameters not given. */
export function uiPattern(ui, key, params = {}) {
  const text = ui(key, params).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${text.replace(/\\\{\w+\\\}/g, '.+')}$`);
}

// ---- a person's page: `d.page`, and `d.account` and `d.password` to log in ----

/** Waits until the page's WebSocket is logged in. */
export async function online(d) {
  await d.page.locator('#conn[data-state="online"]').waitFor();
}

/** The login token the page keeps. */
export async function token(d) {
  return d.page.evaluate(() => localStorage.getItem('rim.token'));
}

/** Logs in with the login form, its labels in the language of `ui`. */
export async function logIn(d, ui) {
  await d.page.getByRole('textbox', { name: ui('login.account') }).fill(d.account);
  await d.page.getByLabel(ui('login.password'), { exact: true }).fill(d.password);
  await d.page.getByRole('button', { name: ui('login.logIn'), exact: true }).click();
  await online(d);
}
