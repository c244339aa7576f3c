/**
 * The mail the service sends, as small templates with a text and an HTML part. Nothing secret but the link
 * itself; no images, no remote resources, no tracking. Links are built from PUBLIC_URL, never from a request's
 * Host header: a forged Host would otherwise put an attacker's domain in a victim's reset link (password-reset
 * poisoning).
 */
import type { Config } from '../config';
import { DescribedError } from '../lib/logger';
import type { LinkParams, LinkTemplate, MailParams, MailTemplate } from '../services/outbox';

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

type Settings = Pick<Config, 'APP_NAME' | 'PUBLIC_URL' | 'PORT'>;

/** A queued message the templates cannot render (written by another version, or damaged): it can never be sent. */
export class TemplateError extends DescribedError {
  override name = 'TemplateError';
}

/** Where links point: PUBLIC_URL, else this machine (development). */
export const linkBase = (config: Settings): string => config.PUBLIC_URL ?? `http://localhost:${config.PORT}`;

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/** An address with most of its local part hidden, for a notice to the other address: `a***@example.com`. */
const maskEmail = (email: string) => email.replace(/^(.)[^@]*@/, '$1***@');

interface Body {
  subject: string;
  paragraphs: string[];
  link?: { label: string; url: string };
  footer?: string;
}

function layout(config: Settings, body: Body): RenderedMail {
  const footer = body.footer ?? `You get this message because of your account at ${config.APP_NAME}.`;
  const text = [
    ...body.paragraphs,
    ...(body.link ? [`${body.link.label}:\n${body.link.url}`] : []),
    `-- \n${footer}`,
  ].join('\n\n');
  const html = [
    '<!doctype html>',
    `<html><head><meta charset="utf-8"><title>${escapeHtml(body.subject)}</title></head>`,
    '<body style="font-family: sans-serif; line-height: 1.5; max-width: 40em">',
    ...body.paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`),
    ...(body.link
      ? [
          `<p><a href="${escapeHtml(body.link.url)}">${escapeHtml(body.link.label)}</a></p>`,
          `<p style="font-size: small">Or paste this address into your browser: ${escapeHtml(body.link.url)}</p>`,
        ]
      : []),
    `<hr><p style="font-size: small; color: #555">${escapeHtml(footer)}</p>`,
    '</body></html>',
  ].join('\n');
  return { subject: body.subject, text, html };
}

const link = (config: Settings, path: string, token: string) =>
  `${linkBase(config)}${path}?token=${encodeURIComponent(token)}`;

const IGNORE = 'If you did not ask for this, ignore this message: nothing changes.';

/** What a template renders from: the queued params, and for a link mail the token the sender minted. */
type Prepared<T extends MailTemplate> = T extends LinkTemplate ? MailParams[T] & LinkParams : MailParams[T];

const TEMPLATES: { [T in MailTemplate]: (config: Settings, params: Prepared<T>) => Body } = {
  'verify-email': (config, { token }) => ({
    subject: `Confirm your email address for ${config.APP_NAME}`,
    paragraphs: [`Confirm that this address belongs to your ${config.APP_NAME} account.`, IGNORE],
    link: { label: 'Confirm your address', url: link(config, '/email/verify', token) },
  }),
  'password-reset': (config, { token, expiresMinutes }) => ({
    subject: `Reset your ${config.APP_NAME} password`,
    paragraphs: [
      `Someone asked to reset the password of your ${config.APP_NAME} account. The link works once, for ${expiresMinutes} minutes.`,
      IGNORE,
    ],
    link: { label: 'Choose a new password', url: link(config, '/password/reset', token) },
  }),
  'password-changed': (config) => ({
    subject: `Your ${config.APP_NAME} password was changed`,
    paragraphs: [
      `The password of your ${config.APP_NAME} account was just changed, and every device was signed out.`,
      'If this was not you, ask for a password reset at once, and tell your administrator.',
    ],
  }),
  'email-change-confirm': (config, { token }) => ({
    subject: `Confirm your new email address for ${config.APP_NAME}`,
    paragraphs: [
      `Someone asked to move a ${config.APP_NAME} account to this address. It moves only once you confirm.`,
      IGNORE,
    ],
    link: { label: 'Confirm the new address', url: link(config, '/email/verify', token) },
  }),
  'email-change-notice': (config, { newEmail }) => ({
    subject: `A change of your ${config.APP_NAME} email address was requested`,
    paragraphs: [
      `Someone signed in to your ${config.APP_NAME} account asked to move it to ${maskEmail(newEmail)}. It moves once that address confirms.`,
      'If this was not you, change your password now: the request needed it.',
    ],
  }),
  'recovery-code-used': (config, { left }) => ({
    subject: `A recovery code of your ${config.APP_NAME} account was used`,
    paragraphs: [
      `One of the recovery codes of your ${config.APP_NAME} account was just used to sign in. ${left} of them are left.`,
      'If this was not you, someone has your password and a recovery code: change your password now, make new recovery codes, and tell your administrator.',
    ],
  }),
  'second-factor-removed': (config, { byAdmin }) => ({
    subject: `The second factor of your ${config.APP_NAME} account was removed`,
    paragraphs: [
      byAdmin
        ? `An administrator removed every second factor of your ${config.APP_NAME} account and signed out every device. Your password alone logs in now.`
        : `Two-factor authentication of your ${config.APP_NAME} account was just turned off. Your password alone logs in now.`,
      'If you did not ask for this, change your password now and tell your administrator.',
    ],
  }),
  test: (config) => ({
    subject: `${config.APP_NAME} test message`,
    paragraphs: [`This message shows that ${config.APP_NAME} can send mail.`],
    footer: 'Sent by `bun run cli mail test`.',
  }),
};

const isTemplate = (name: string): name is MailTemplate => Object.hasOwn(TEMPLATES, name);
const WITH_LINK: ReadonlySet<MailTemplate> = new Set<LinkTemplate>([
  'verify-email',
  'password-reset',
  'email-change-confirm',
]);

/** Renders a queued message; a TemplateError when its template or parameters are not ones this version knows. */
export function renderMail(
  config: Settings,
  { template, params }: { template: string; params: unknown },
): RenderedMail {
  if (!isTemplate(template)) throw new TemplateError(`unknown mail template ${JSON.stringify(template.slice(0, 40))}`);
  const token = (params as { token?: unknown } | null)?.token;
  if (typeof params !== 'object' || (WITH_LINK.has(template) && (typeof token !== 'string' || token === ''))) {
    throw new TemplateError(`bad parameters for mail template ${template}`);
  }
  const render = TEMPLATES[template] as (config: Settings, params: unknown) => Body;
  return layout(config, render(config, params));
}
