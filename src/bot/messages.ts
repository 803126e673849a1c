import { MessageReferenceType, type Message } from 'discord.js';
import { childLogger } from '../log/logger.ts';
import type { BotContext } from './context.ts';
import { answerEdit } from './edit-reply.ts';
import { Refusal, failureText } from './errors.ts';
import type { Slot } from './limits.ts';
import { messageTarget, requesterOfMessage, showPrepared, type Posted, type Shown } from './present.ts';
import { clip, NO_MENTIONS, visibleText } from './text.ts';

const log = childLogger('messages');

function withoutMention(content: string, botId: string): string {
  return content.replace(new RegExp(`<@!?${botId}>`, 'g'), '').trim();
}

/** "scenewright is typing…" while the planner works; purely cosmetic, so failures are ignored. */
function typing(m: Message): void {
  if ('sendTyping' in m.channel) void m.channel.sendTyping().catch(() => undefined);
}

async function answer(m: Message, payload: Partial<Shown> & { content: string }): Promise<Posted> {
  // A reply to the user's message, pinging nobody; if their message vanished meanwhile, a plain message.
  const posted = await m.reply({ ...payload, allowedMentions: NO_MENTIONS, failIfNotExists: false });
  return { id: posted.id, channelId: posted.channelId, viaInteraction: false };
}

/**
 * Messages: a reply (reference type 0, never a forward) to one of the bot's images asks for a change; an
 * @mention without a reply asks for a new image (how the bot works where slash commands are not used).
 */
export async function onMessage(m: Message, ctx: BotContext): Promise<void> {
  if (m.author.bot || m.webhookId || !m.inGuild()) return;
  const botId = m.client.user.id;
  const ref = m.reference;
  const isReply = ref?.messageId !== undefined && ref.type === MessageReferenceType.Default;
  const link = isReply ? ctx.store.messageLink(ref.messageId!) : undefined;
  const mentioned = m.mentions.users.has(botId);
  if (!link && !(mentioned && !isReply)) return;
  // Recorded until answered, as interactions are: a process that dies meanwhile leaves it to the next one.
  ctx.store.addPendingMessage({ messageId: m.id, channelId: m.channelId, userId: m.author.id });
  try {
    const text = visibleText(withoutMention(m.content, botId)).trim();
    if (link) await onReply(m, text, link.generationId, link.role === 'question' ? link.history : [], ctx);
    else await onMention(m, text, ctx);
  } catch (e) {
    await answer(m, { content: clip(failureText(e, log, { message: m.id })) }).catch((e2: unknown) =>
      log.error({ err: e2 }, 'could not report an error'),
    );
  } finally {
    try {
      ctx.store.removePendingMessage(m.id);
    } catch (e) {
      log.debug({ err: e }, 'could not clear a pending message (store closed)');
    }
  }
}

async function onReply(
  m: Message,
  text: string,
  generationId: string,
  history: string[],
  ctx: BotContext,
): Promise<void> {
  if (!text) {
    // Without the MessageContent intent a reply arrives empty unless it mentions the bot.
    if (!ctx.readsMessageContent) {
      await answer(m, {
        content:
          'I cannot read replies in this server (the Message Content intent is off). Press **Edit** on the image, or mention me in your reply: `@scenewright make the sky stormy`.',
      });
    }
    return;
  }
  const g = ctx.store.getGeneration(generationId);
  if (!g) throw new Refusal('I have no record of that image any more. Use /imagine to make a new one.');
  const requester = requesterOfMessage(m);
  const denied = ctx.flows.access.control(g, requester);
  if (denied) throw new Refusal(denied);
  const slot = await ctx.flows.precheck(requester, text, { paints: true });
  try {
    typing(m);
    const outcome = await ctx.flows.edit(g, text, requester, messageTarget(m), history);
    await answerEdit(ctx, {
      parent: g,
      instruction: text,
      history,
      outcome,
      post: (shown) => answer(m, shown),
      viaForm: false,
    });
  } finally {
    slot.release();
  }
}

async function onMention(m: Message, text: string, ctx: BotContext): Promise<void> {
  if (!text) {
    await answer(m, {
      content: 'Tell me what to paint: `@scenewright a red fox in the snow, mountains behind it`, or use /imagine.',
    });
    return;
  }
  const requester = requesterOfMessage(m);
  const slot: Slot = await ctx.flows.precheck(requester, text, { paints: true });
  try {
    typing(m);
    const prepared = await ctx.flows.imagine({ requester, guildId: m.guildId, prompt: text, target: messageTarget(m) });
    await ctx.attach(prepared, await answer(m, showPrepared(prepared, ctx.flows.noModelText())));
  } finally {
    slot.release();
  }
}
