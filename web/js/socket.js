// The WebSocket to /ws: logs in with the REST token, resumes from the last
// message id seen, keeps itself alive and reconnects with backoff.
//
// Events (a `Socket` is an EventTarget; `detail` carries the payload):
//   state        {state: 'connecting'|'online'|'offline', retryAt?: ms}
//   push         a server frame with an `event` (Msg, Read, Notify)
//   unauthorized the token was refused: the session is over
//
// Every frame the client sends carries a clientMsgId and gets exactly one
// answer with the same id (rim's Ack, or kind "Error" with a code), which
// `request` turns into a resolved or rejected promise.
//
// Login opts into the replay ("replay": true): right after its answer the
// server pushes the messages after the resume cursor (`msgId`, the newest id
// this device is sure it has), or, before there is a cursor, those this
// device has not acknowledged. A server from before the flag replays anyway.
//
// Right after each login, and whenever the page is shown or hidden, a
// Visibility frame tells the server whether someone is looking at this
// device: while they are, it sends this device no Web Push.

import { t } from './i18n.js';

const HEARTBEAT_MS = 25_000;
const ANSWER_TIMEOUT_MS = 10_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export class FrameError extends Error {
  constructor(code, message) {
    super(message || t('errors.code', { code }));
    this.code = code;
  }
}

let counter = 0;
/** A clientMsgId: unique per device and send, stable across resends. */
export function newClientId(prefix = 'w') {
  const random = crypto.getRandomValues(new Uint32Array(2));
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${random[0].toString(36)}${random[1].toString(36)}-${counter}`;
}

export class Socket extends EventTarget {
  /**
   * @param {() => string} token  the REST token to log in with
   * @param {() => number} cursor the newest message id already seen (0: none)
   */
  constructor(token, cursor) {
    super();
    this.token = token;
    this.cursor = cursor;
    this.ws = null;
    this.state = 'offline';
    this.attempt = 0;
    /** Counts connections: pushes are tied to the one they arrived on. */
    this.epoch = 0;
    this.stopped = true;
    this.pending = new Map(); // clientMsgId -> {resolve, reject, timer}
    this.retryTimer = null;
    this.heartTimer = null;
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.drop();
    this.onVisible = () => {
      if (this.online) this.sendVisibility(this.ws);
      else if (document.visibilityState === 'visible' && this.state === 'offline') this.reconnectNow();
    };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.connect();
  }

  /** Closes for good (logout). */
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    document.removeEventListener('visibilitychange', this.onVisible);
    clearTimeout(this.retryTimer);
    this.drop();
  }

  get online() {
    return this.state === 'online';
  }

  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...extra } }));
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped || this.ws) return;
    this.setState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    ws.onopen = () => this.login(ws);
    ws.onmessage = (ev) => this.onFrame(ev.data);
    ws.onclose = () => {
      if (this.ws === ws) this.closed();
    };
  }

  async login(ws) {
    const body = { kind: 'Text', content: this.token(), replay: true };
    const cursor = this.cursor();
    if (cursor > 0) body.msgId = cursor;
    try {
      await this.request('Login', body, ws);
    } catch (err) {
      if (this.ws !== ws) return;
      if (err.code === 401) {
        this.stop();
        this.dispatchEvent(new CustomEvent('unauthorized'));
      } else {
        ws.close();
      }
      return;
    }
    if (this.ws !== ws) return;
    this.attempt = 0;
    this.setState('online');
    this.sendVisibility(ws);
    this.heartbeat(ws);
  }

  /** Tells the server whether the page is in front of someone now. */
  sendVisibility(ws) {
    const kind = document.visibilityState === 'visible' ? 'Visible' : 'Hidden';
    // Unanswered, the connection is judged by the heartbeat; nothing to redo.
    this.request('Visibility', { kind }, ws).catch(() => {});
  }

  heartbeat(ws) {
    clearTimeout(this.heartTimer);
    this.heartTimer = setTimeout(async () => {
      if (this.ws !== ws) return;
      try {
        await this.request('Heart', {}, ws);
        this.heartbeat(ws);
      } catch {
        // No answer: the connection is dead even if the browser has not
        // noticed yet (a laptop that slept, a phone that changed networks).
        if (this.ws === ws) this.drop();
      }
    }, HEARTBEAT_MS);
  }

  /** Forgets the current connection and schedules the next attempt. */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    ws.onclose = null;
    ws.onmessage = null;
    try {
      ws.close();
    } catch {
      // Closing a socket that never opened can throw; it is gone either way.
    }
    this.closed();
  }

  closed() {
    this.ws = null;
    this.epoch += 1;
    clearTimeout(this.heartTimer);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new FrameError(0, t('errors.connectionLost')));
    }
    this.pending.clear();
    if (this.stopped) {
      this.setState('offline');
      return;
    }
    // Exponential backoff with jitter, so a restarted server is not hit by
    // every client at the same moment.
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.attempt += 1;
    const retryAt = Date.now() + delay;
    this.setState('offline', { retryAt });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Tries again at once (the user asked, or the network came back). */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.event) {
      this.dispatchEvent(new CustomEvent('push', { detail: frame }));
      return;
    }
    const p = this.pending.get(frame.clientMsgId);
    if (!p) return;
    this.pending.delete(frame.clientMsgId);
    clearTimeout(p.timer);
    if (frame.kind === 'Error') p.reject(new FrameError(frame.code, frame.content));
    else p.resolve(frame);
  }

  /**
   * Sends `event` with `body` and resolves with the server's answer. The
   * body's clientMsgId is used when given (resends keep theirs), else made.
   */
  request(event, body, ws = this.ws) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN || (event !== 'Login' && !this.online)) {
        reject(new FrameError(0, t('errors.notConnected')));
        return;
      }
      const clientMsgId = body.clientMsgId || newClientId(event.toLowerCase());
      const timer = setTimeout(() => {
        this.pending.delete(clientMsgId);
        reject(new FrameError(0, t('errors.noAnswer')));
      }, ANSWER_TIMEOUT_MS);
      this.pending.set(clientMsgId, { resolve, reject, timer });
      ws.send(JSON.stringify({ event, body: { ...body, clientMsgId } }));
    });
  }
}
