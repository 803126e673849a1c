import type { ButtonInteraction } from 'discord.js';
import type { Generation } from '../../store/schema.ts';
import type { BotContext } from '../context.ts';
import type { Version } from '../flows.ts';
import { respond, showVersion } from '../present.ts';

/** Posts a version (Undo, Continue from vN) as a new message; replies to it and its buttons change that version. */
export async function bringBack(
  ix: ButtonInteraction,
  ctx: BotContext,
  target: Generation,
  v: Version,
  heading: string,
): Promise<void> {
  await ix.deferReply();
  const limit = Math.min(ctx.config.limits.attachmentSizeLimit, ix.attachmentSizeLimit ?? Infinity);
  const posted = await respond(ix, await showVersion(v, heading, { canPaint: ctx.flows.canPaint, limit }));
  // From now on replies to this message (and its buttons) change that version: no painting needed.
  ctx.store.linkMessage(posted.id, posted.channelId, target.id, 'result');
}
