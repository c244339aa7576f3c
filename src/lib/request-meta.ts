import { DescribedError } from './logger';

/** Who made a request and from where, as it shows it, and until when it is worth working on. */
export interface RequestMeta {
  /** The client's address: the socket's peer, or what a trusted proxy says (TRUST_PROXY); null if unknown. */
  ip: string | null;
  userAgent: string | null;
  /**
   * Aborted once the request has been answered without its handler (the timeout's 503) or its client has
   * gone: from then on a login, registration, password change or refresh does nothing more (no hash, no
   * audit row, no counter), while revocations still complete.
   */
  signal?: AbortSignal;
  /** When the request times out, in `performance.now()` milliseconds: work that cannot finish by then is refused. */
  deadline?: number;
}

/** Why a request's work stopped: it has been answered already, or its client disconnected. Nobody sees it. */
export class RequestAbandoned extends DescribedError {
  override name = 'RequestAbandoned';
}

/** Throws the request's RequestAbandoned once nobody waits for its outcome: call it before every write. */
export function throwIfAbandoned(meta: Pick<RequestMeta, 'signal'>): void {
  meta.signal?.throwIfAborted();
}
