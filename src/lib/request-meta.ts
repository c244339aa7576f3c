/** Who made a request and from where, as it shows it: for sessions, the audit log and the rate limits. */
export interface RequestMeta {
  /** The client's address: the socket's peer, or what a trusted proxy says (TRUST_PROXY); null if unknown. */
  ip: string | null;
  userAgent: string | null;
}
