import type * as http2 from "node:http2";
import { type ServerMetrics, SessionCloseReason } from "./server-metrics.ts";

export interface SessionGuardOptions {
  /** Time a new connection has to send the HTTP/2 preface and its SETTINGS. */
  readonly handshakeTimeoutMs: number;
  /** A connection with no call open (and none started) for this long is closed (0: never). */
  readonly idleTimeoutMs: number;
  /** How often each connection is pinged (0: never). */
  readonly keepaliveIntervalMs: number;
  /** A ping not acknowledged within this closes the connection. */
  readonly keepaliveTimeoutMs: number;
  readonly metrics: ServerMetrics;
}

/** What the guard knows of one connection; the RPC layer reports its calls through it. */
export interface GuardedSession {
  /** A call (HTTP/2 stream) opened on the connection. */
  streamOpened(): void;
  /** A call (HTTP/2 stream) on the connection closed. */
  streamClosed(): void;
}

/**
 * Keeps every HTTP/2 connection of a server accountable, with one timer for all of them:
 *
 * - **handshake**: a connection that has not sent the client preface and its SETTINGS within
 *   `handshakeTimeoutMs` (half a preface, or nothing) is destroyed;
 * - **keepalive**: every connection is pinged every `keepaliveIntervalMs`; one that does not answer
 *   within `keepaliveTimeoutMs` is destroyed, with its calls. A frozen or vanished client answers
 *   no ping, and neither does one stuck halfway through a header block (HEADERS without
 *   END_HEADERS: HTTP/2 allows nothing but CONTINUATION until the block ends), so their calls and
 *   what they hold (a watch's subscription) end within seconds. A live client's stack answers
 *   pings by itself, so a healthy call may stay open as long as it likes;
 * - **idle**: a connection that had no call open and started none for `idleTimeoutMs` is closed
 *   gracefully (GOAWAY; clients reconnect on their next call), and destroyed if it lingers.
 *
 * The timer ticks at a quarter of the shortest of those times (at most once a second) and looks at
 * each connection. If the event loop was blocked (the tick comes late), timeouts are not judged on
 * that tick: an acknowledgement may be waiting unread in a socket.
 */
export interface SessionGuard {
  /** Starts guarding a new connection (the server's "session" event). */
  track(session: http2.ServerHttp2Session): GuardedSession;
  /** Open connections. */
  readonly size: number;
  stop(): void;
}

export function createSessionGuard(options: SessionGuardOptions): SessionGuard {
  return new Guard(options);
}

/** A connection that was closed gracefully is destroyed if still open after this. */
const lingerMs = 5_000;

class Session implements GuardedSession {
  readonly session: http2.ServerHttp2Session;
  readonly openedAt: number;
  handshaken = false;
  streams = 0;
  /** A stream opened since the last tick. */
  touched = false;
  /** Since when (as seen by the ticks) the connection has had no stream. */
  idleSince: number;
  lastPingAt: number;
  pingSentAt: number | undefined;
  closingSince: number | undefined;

  constructor(session: http2.ServerHttp2Session, now: number) {
    this.session = session;
    this.openedAt = now;
    this.idleSince = now;
    this.lastPingAt = now;
  }

  streamOpened(): void {
    this.streams++;
    this.touched = true;
  }

  streamClosed(): void {
    this.streams--;
  }
}

class Guard implements SessionGuard {
  readonly #options: SessionGuardOptions;
  readonly #sessions = new Set<Session>();
  readonly #tickMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastTick = performance.now();

  constructor(options: SessionGuardOptions) {
    this.#options = options;
    const times = [
      options.handshakeTimeoutMs,
      options.idleTimeoutMs,
      options.keepaliveIntervalMs,
      options.keepaliveIntervalMs > 0 ? options.keepaliveTimeoutMs : 0,
    ].filter((t) => t > 0);
    this.#tickMs = Math.min(1_000, Math.max(10, Math.floor(Math.min(...times) / 4)));
  }

  get size(): number {
    return this.#sessions.size;
  }

  track(session: http2.ServerHttp2Session): GuardedSession {
    const now = performance.now();
    const s = new Session(session, now);
    this.#sessions.add(s);
    session.once("remoteSettings", () => {
      s.handshaken = true;
      const at = performance.now();
      s.idleSince = at;
      s.lastPingAt = at;
    });
    session.once("close", () => this.#sessions.delete(s));
    if (this.#timer === undefined) {
      this.#lastTick = now;
      this.#timer = setInterval(() => this.#tick(), this.#tickMs);
      this.#timer.unref();
    }
    return s;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = performance.now();
    const late = now - this.#lastTick > 2 * this.#tickMs + 100;
    this.#lastTick = now;
    if (this.#sessions.size === 0) {
      this.stop();
      return;
    }
    for (const s of this.#sessions) this.#check(s, now, late);
  }

  #check(s: Session, now: number, late: boolean): void {
    const o = this.#options;
    const session = s.session;
    if (session.destroyed) {
      this.#sessions.delete(s);
      return;
    }
    if (s.streams > 0 || s.touched) {
      s.touched = false;
      s.idleSince = now;
    }
    if (late) return;
    if (s.closingSince !== undefined) {
      if (now - s.closingSince >= lingerMs) session.destroy();
      return;
    }
    if (!s.handshaken) {
      if (now - s.openedAt >= o.handshakeTimeoutMs)
        this.#end(s, SessionCloseReason.handshakeTimeout);
      return;
    }
    if (s.pingSentAt !== undefined) {
      if (now - s.pingSentAt >= o.keepaliveTimeoutMs) {
        this.#end(s, SessionCloseReason.keepaliveTimeout);
        return;
      }
    } else if (o.keepaliveIntervalMs > 0 && now - s.lastPingAt >= o.keepaliveIntervalMs) {
      this.#ping(s, now);
    }
    if (o.idleTimeoutMs > 0 && s.streams === 0 && now - s.idleSince >= o.idleTimeoutMs) {
      o.metrics.sessionClosed(SessionCloseReason.idleTimeout);
      s.closingSince = now;
      session.close();
    }
  }

  #ping(s: Session, now: number): void {
    s.lastPingAt = now;
    s.pingSentAt = now;
    try {
      s.session.ping((err) => {
        if (!err) s.pingSentAt = undefined;
      });
    } catch {
      // Too many pings outstanding, or the session is closing: the timeout judges it.
    }
  }

  /** Destroys a connection that broke its contract: it is not worth a GOAWAY. */
  #end(s: Session, reason: SessionCloseReason): void {
    this.#options.metrics.sessionClosed(reason);
    this.#sessions.delete(s);
    s.session.destroy();
  }
}
