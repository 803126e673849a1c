import {
  AttachmentBuilder,
  PermissionFlagsBits,
  type BaseInteraction,
  type GuildMember,
  type Message,
  type RepliableInteraction,
} from 'discord.js';
import type { Generation } from '../store/schema.ts';
import type { Requester } from './access.ts';
import { canUndo, historyButtons, HISTORY_MAX, pendingButtons, resultButtons } from './components.ts';
import { isTokenGone } from './errors.ts';
import type { EditOutcome, History, NewTarget, Prepared, Version } from './flows.ts';
import { fitAttachment } from './images.ts';
import { stylesLine } from './styles.ts';
import { clip, NO_MENTIONS, positionText, quote, regionList } from './text.ts';

/** Interaction tokens live 15 minutes (Discord's documented lifetime). */
export const TOKEN_LIFETIME_MS = 15 * 60_000;

function rolesOf(member: BaseInteraction['member'] | GuildMember | null): string[] | undefined {
  if (!member) return undefined;
  const roles = (member as { roles: unknown }).roles;
  if (Array.isArray(roles)) return roles as string[];
  const cache = (roles as { cache?: Map<string, unknown> } | undefined)?.cache;
  return cache ? [...cache.keys()] : undefined;
}

export function requesterOf(ix: BaseInteraction): Requester {
  const channel = ix.channel as { nsfw?: boolean } | null;
  return {
    userId: ix.user.id,
    guildId: ix.guildId,
    channelId: ix.channelId ?? '',
    roleIds: rolesOf(ix.member),
    canManageMessages: ix.memberPermissions?.has(PermissionFlagsBits.ManageMessages) ?? false,
    channelNsfw: channel?.nsfw === true,
  };
}

export function requesterOfMessage(m: Message): Requester {
  const channel = m.channel as { nsfw?: boolean };
  let canManageMessages = false;
  if (m.member && m.inGuild()) {
    try {
      canManageMessages = m.member.permissionsIn(m.channel).has(PermissionFlagsBits.ManageMessages);
    } catch {
      canManageMessages = false;
    }
  }
  return {
    userId: m.author.id,
    guildId: m.guildId,
    channelId: m.channelId,
    roleIds: rolesOf(m.member),
    canManageMessages,
    channelNsfw: channel.nsfw === true,
  };
}

export function interactionTarget(ix: BaseInteraction): NewTarget {
  return {
    userId: ix.user.id,
    guildId: ix.guildId,
    channelId: ix.channelId ?? '',
    viaInteraction: true,
    interactionToken: ix.token,
    tokenExpiresAt: ix.createdTimestamp + TOKEN_LIFETIME_MS,
    ...(ix.attachmentSizeLimit ? { attachmentSizeLimit: ix.attachmentSizeLimit } : {}),
  };
}

export function messageTarget(m: Message): NewTarget {
  return { userId: m.author.id, guildId: m.guildId, channelId: m.channelId, replyToMessageId: m.id };
}

export interface Shown {
  content: string;
  files: AttachmentBuilder[];
  components: ReturnType<typeof resultButtons>;
  allowedMentions: typeof NO_MENTIONS;
}

function layoutFile(png: Buffer, g: Generation): AttachmentBuilder {
  return new AttachmentBuilder(png, {
    name: `layout-${g.id}.png`,
    description: `Layout: ${regionList(g.params.scene)}`.slice(0, 1000),
  });
}

/** The first answer to a request: its layout, and either its place in the queue or why nothing will be painted. */
export function showPrepared(p: Prepared, noModelText: string, heading?: string): Shown {
  const g = p.generation;
  const lines = [heading ?? `🗺️ Layout for ${quote(g.requestText)}`, `-# ${regionList(g.params.scene)}`];
  const styles = stylesLine(g.params.scene);
  if (styles) lines.push(`-# ${styles}`);
  if (p.note) lines.push(`-# ${p.note}`);
  if (p.job) {
    lines.push(`⏳ Queued: ${positionText(p.position ?? 1)}. This message shows the painting as it goes.`);
    return {
      content: clip(lines.join('\n')),
      files: [layoutFile(p.layoutPng, g)],
      components: pendingButtons(g.id),
      allowedMentions: NO_MENTIONS,
    };
  }
  lines.push(`ℹ️ ${noModelText}`, 'Reply to this message to change the layout, or press **Edit**.');
  return {
    content: clip(lines.join('\n')),
    files: [layoutFile(p.layoutPng, g)],
    components: resultButtons(g.id, { canPaint: false, undo: canUndo(g) }),
    allowedMentions: NO_MENTIONS,
  };
}

export function showEditOutcome(o: Extract<EditOutcome, { kind: 'prepared' }>, noModelText: string): Shown {
  const what =
    o.what === 'repaint'
      ? `✏️ Repainting ${o.changed.join(', ')} for ${quote(o.generation.requestText)}`
      : o.what === 'regenerate'
        ? `✏️ Painting the changed layout for ${quote(o.generation.requestText)} (${o.changed.join(', ')})`
        : `✏️ Changed layout for ${quote(o.generation.requestText)}`;
  return showPrepared(o, noModelText, what);
}

/** What the Layout button shows: the boxes and every prompt, privately. */
export function showLayout(g: Generation, png: Buffer): Shown {
  const s = g.params.scene;
  const lines = [
    `🗺️ **Layout** of ${quote(g.requestText)} — ${s.width}×${s.height}, seed ${g.params.seed}, ${g.params.steps} steps, ${g.params.model}`,
    `**Picture:** ${quote(s.prompt, 300)}`,
  ];
  if (s.background) lines.push(`**Background:** ${quote(s.background, 200)}`);
  if (s.exclude.length) lines.push(`**Left out:** ${s.exclude.map((e) => quote(e, 60)).join(', ')}`);
  const styles = stylesLine(s);
  if (styles) lines.push(styles);
  for (const r of s.regions) {
    const b = r.box;
    lines.push(
      `\`${r.id}\` **${quote(r.label, 80)}** at x ${pct(b.x)}, y ${pct(b.y)}, ${pct(b.w)} × ${pct(b.h)}: ${quote(r.prompt, 160)}`,
    );
  }
  return { content: clip(lines.join('\n')), files: [layoutFile(png, g)], components: [], allowedMentions: NO_MENTIONS };
}

function pct(v: number): string {
  return `${Math.round(v * 100)}%`;
}

/** Where the bot's answer to a request ended up. */
export interface Posted {
  id: string;
  channelId: string;
  /** An interaction response (edited through its token while that lives) or a plain channel message. */
  viaInteraction: boolean;
}

/**
 * Shows the answer to a deferred interaction. Tokens can die early (Discord says so) and always do after
 * 15 minutes; then the answer goes to the channel as a message that mentions only the user.
 */
export async function respond(ix: RepliableInteraction, shown: Shown): Promise<Posted> {
  try {
    const m = await ix.editReply(shown);
    return { id: m.id, channelId: m.channelId, viaInteraction: true };
  } catch (e) {
    const channel = ix.channel;
    if (!isTokenGone(e) || !channel?.isSendable()) throw e;
    const m = await channel.send({
      ...shown,
      content: clip(`<@${ix.user.id}> ${shown.content}`),
      allowedMentions: { parse: [], users: [ix.user.id] },
    });
    return { id: m.id, channelId: m.channelId, viaInteraction: false };
  }
}

/** The History button's answer: the chain as one picture, and a "continue from" button per version. */
export function showHistory(g: Generation, h: History, png: Buffer): Shown {
  const shown = h.versions.slice(-HISTORY_MAX);
  const lines = [
    `🕰️ **History** of ${quote(g.requestText)}: ${h.versions.length} version${h.versions.length === 1 ? '' : 's'}, oldest first. Press **Continue from vN** to go back to a version; replying to that image then changes it.`,
  ];
  const missing = h.versions.filter((v) => v.missing).map((v) => `v${v.number}`);
  if (missing.length)
    lines.push(
      `⚠️ The image${missing.length === 1 ? '' : 's'} of ${missing.join(', ')} ${missing.length === 1 ? 'was' : 'were'} deleted, so ${missing.length === 1 ? 'it shows' : 'they show'} as a grey tile. You can still continue from ${missing.length === 1 ? 'it' : 'them'}: I will paint its layout afresh.`,
    );
  if (h.truncated)
    lines.push(
      '⚠️ Earlier versions of this conversation were deleted; the history starts at the oldest one I still have.',
    );
  if (shown.length < h.versions.length)
    lines.push(`-# The picture and buttons show the last ${shown.length} versions only.`);
  const file = new AttachmentBuilder(png, {
    name: `history-${g.id}.png`,
    description: h.versions
      .map((v) => `v${v.number}: ${v.label}`)
      .join('; ')
      .slice(0, 1000),
  });
  return {
    content: clip(lines.join('\n')),
    files: [file],
    components: historyButtons(
      shown.map((v) => ({ id: v.generation.id, number: v.number, current: v.generation.id === g.id })),
    ),
    allowedMentions: NO_MENTIONS,
  };
}

/**
 * A version brought back (Continue from vN, Undo): its image and its buttons as a new message, so replying to
 * it changes this version. A version whose image is gone shows its layout and says so.
 */
export async function showVersion(
  v: Version,
  heading: string,
  o: { canPaint: boolean; limit: number },
): Promise<Shown> {
  const g = v.generation;
  const lines = [heading, `-# ${regionList(g.params.scene)}`];
  const image = g.artifacts['image.png'];
  let files: AttachmentBuilder[] = [];
  if (v.png && image && !v.missing && g.status === 'done') {
    const fitted = await fitAttachment(v.png, o.limit, `scenewright-${g.id}`);
    files = [new AttachmentBuilder(fitted.data, { name: fitted.name })];
    lines.push('-# Reply to this image to change this version.');
  } else {
    if (v.png) files = [layoutFile(v.png, g)];
    lines.push(
      v.missing
        ? 'ℹ️ The image of this version was deleted. Reply to change it: I will paint its layout afresh.'
        : '-# Reply to this layout to change this version.',
    );
  }
  return {
    content: clip(lines.join('\n')),
    files,
    components: resultButtons(g.id, { canPaint: o.canPaint, undo: canUndo(g) }),
    allowedMentions: NO_MENTIONS,
  };
}
