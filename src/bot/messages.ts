import { MessageReferenceType, type Message } from 'discord.js';
import { childLogger } from '../log/logger.ts';
import type { BotContext } from './context.ts';
import { Refusal } from './errors.ts';
import { errorText } from './interactions.ts';
import { messageTarget, requesterOfMessage, showEditOutcome, showPrepared, type Shown } from './present.ts';
import { clip, NO_MENTIONS } from './text.ts';

const log = childLogger('messages');

function withoutMention(content: string, botId: string): string {
  return content.replace(new RegExp(`<@!?${botId}>`, 'g'), '').trim();
}

/** "scenewright is typing…" while the planner works; purely cosmetic, so failures are ignored. */
function typing(m: Message): void {
  if ('sendTyping' in m.channel) void m.channel.sendTyping().catch(() => undefined);
}

async function answer(m: Message, payload: Partial<Shown> & { content: string }): Promise<Message> {
  // A reply to the user's message, pinging nobody; if their message vanished meanwhile, a plain message.
  return m.reply({ ...payload, allowedMentions: NO_MENTIONS, failIfNotExists: false });
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
  try {
    const text = withoutMention(m.content, botId);
    if (link) await onReply(m, text, link.generationId, link.role === 'question' ? link.history : [], ctx);
    else await onMention(m, text, ctx);
  } catch (e) {
    if (!(e instanceof Refusal)) log.error({ err: e, message: m.id }, 'message handling failed');
    await answer(m, { content: clip(errorText(e)) }).catch((e2: unknown) =>
      log.error({ err: e2 }, 'could not report an error'),
    );
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
  await ctx.flows.precheck(requester, text, { paints: true });
  typing(m);
  const outcome = await ctx.flows.edit(g, text, requester, messageTarget(m), history);
  if (outcome.kind === 'clarify') {
    const posted = await answer(m, {
      content: clip(`❓ ${outcome.question}\n-# Reply to this message with the answer.`),
    });
    ctx.store.linkMessage(posted.id, posted.channelId, g.id, 'question', [...history, text, outcome.question]);
    return;
  }
  if (outcome.kind === 'nothing') {
    await answer(m, { content: clip(`🤔 ${outcome.message}`) });
    return;
  }
  const posted = await answer(m, showEditOutcome(outcome, ctx.flows.noModelText()));
  await ctx.attach(outcome, { id: posted.id, channelId: posted.channelId, viaInteraction: false });
}

async function onMention(m: Message, text: string, ctx: BotContext): Promise<void> {
  if (!text) {
    await answer(m, {
      content: 'Tell me what to paint: `@scenewright a red fox in the snow, mountains behind it`, or use /imagine.',
    });
    return;
  }
  const requester = requesterOfMessage(m);
  await ctx.flows.precheck(requester, text, { paints: true });
  typing(m);
  const prepared = await ctx.flows.imagine({ requester, guildId: m.guildId, prompt: text, target: messageTarget(m) });
  const posted = await answer(m, showPrepared(prepared, ctx.flows.noModelText()));
  await ctx.attach(prepared, { id: posted.id, channelId: posted.channelId, viaInteraction: false });
}
