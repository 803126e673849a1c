import { readFileSync } from 'node:fs';
import {
  MessageFlags,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type Interaction,
  type ModalSubmitInteraction,
  type RepliableInteraction,
} from 'discord.js';
import { COMMANDS } from '../../commands/index.ts';
import { childLogger } from '../log/logger.ts';
import type { Generation } from '../store/schema.ts';
import type { BotContext } from './context.ts';
import { canUndo, EDIT_INPUT, EDIT_MODAL, editModal, HISTORY_MAX, parseCustomId } from './components.ts';
import { renderHistory } from './images.ts';
import { DELETED_BY_USER } from './delivery.ts';
import { DiscordCode, Refusal, discordCode, isTokenGone } from './errors.ts';
import {
  interactionTarget,
  requesterOf,
  respond,
  showEditOutcome,
  showHistory,
  showLayout,
  showPrepared,
  showVersion,
} from './present.ts';
import { clip, NO_MENTIONS, quote } from './text.ts';

const log = childLogger('interactions');
const byName = new Map(COMMANDS.map((c) => [c.name, c] as const));

/** The one entry point for every interaction: slash commands, buttons (`verb:<generation id>`) and modals. */
export async function onInteraction(ix: Interaction, ctx: BotContext): Promise<void> {
  if (!ix.isRepliable()) return;
  // Recorded until answered: if this process dies in between, the next one tells the user (see app.ts).
  ctx.store.addPending({ token: ix.token, interactionId: ix.id, channelId: ix.channelId ?? '', userId: ix.user.id });
  try {
    if (ix.isChatInputCommand()) await onCommand(ix, ctx);
    else if (ix.isButton()) await onButton(ix, ctx);
    else if (ix.isModalSubmit()) await onModal(ix, ctx);
  } catch (e) {
    await showError(ix, e);
  } finally {
    try {
      ctx.store.removePending(ix.token);
    } catch (e) {
      log.debug({ err: e }, 'could not clear a pending interaction (store closed)');
    }
  }
}

/** Discord keeps showing "thinking…" for a deferred interaction nobody answers; tell its user instead. */
export const RESTARTED_TEXT =
  '⚠️ I was restarted while working on this, so it was not finished. Please run the command again.';

async function onCommand(ix: ChatInputCommandInteraction, ctx: BotContext): Promise<void> {
  const command = byName.get(ix.commandName);
  if (!command)
    throw new Refusal(`I do not have a /${ix.commandName} command any more; the command list may be out of date.`);
  await command.execute(ix, ctx);
}

function findGeneration(ctx: BotContext, id: string): Generation {
  const g = ctx.store.getGeneration(id);
  if (!g)
    throw new Refusal(
      'I have no record of that image any more (it may have been deleted). Use /imagine to make a new one.',
    );
  return g;
}

async function onButton(ix: ButtonInteraction, ctx: BotContext): Promise<void> {
  const parsed = parseCustomId(ix.customId);
  if (!parsed || parsed.verb === EDIT_MODAL)
    throw new Refusal('That button is not one I know (it may come from an older version of me).');
  const g = findGeneration(ctx, parsed.generationId);
  const requester = requesterOf(ix);
  if (parsed.verb === 'layout') {
    // Looking is harmless: anyone may see how an image was laid out.
    await ix.deferReply({ flags: MessageFlags.Ephemeral });
    const file = g.artifacts['layout.png'];
    const png = file ? readFileSync(file) : await ctx.planner.renderLayout(g.params.scene);
    const image = g.artifacts['image.png'];
    const over = image ? await ctx.planner.renderLayout(g.params.scene, readFileSync(image)).catch(() => png) : png;
    await ix.editReply(showLayout(g, over));
    return;
  }
  const denied = ctx.flows.access.control(g, requester);
  if (denied) throw new Refusal(denied);
  if (parsed.verb === 'edit') {
    // A modal must be the first answer: no deferring here.
    await ix.showModal(editModal(g.id));
    return;
  }
  if (parsed.verb === 'delete') {
    await ix.deferUpdate();
    if (g.jobId) await ctx.queue.cancel(g.jobId, DELETED_BY_USER);
    try {
      await ix.message.delete();
    } catch (e) {
      if (discordCode(e) !== DiscordCode.UnknownMessage) throw e;
    }
    ctx.store.unlinkMessage(ix.message.id);
    return;
  }
  if (parsed.verb === 'history') {
    await ix.deferReply();
    const h = ctx.flows.history(g);
    // The picture shows the versions the buttons offer: the last HISTORY_MAX of a long conversation.
    const png = await renderHistory(
      h.versions.slice(-HISTORY_MAX).map((v) => ({
        title: `v${v.number}${v.generation.id === g.id ? ' (this one)' : ''}`,
        label: v.label,
        png: v.png,
      })),
    );
    const posted = await respond(ix, showHistory(g, h, png));
    // Replying to the history message changes the version it was opened from.
    ctx.store.linkMessage(posted.id, posted.channelId, g.id, 'history');
    return;
  }
  if (parsed.verb === 'undo' || parsed.verb === 'continue') {
    let target = g;
    let heading: string;
    if (parsed.verb === 'undo') {
      if (!canUndo(g) || !g.parentId)
        throw new Refusal(
          'This image is not an edit of another one, so there is nothing to undo. Press **History** to see its versions.',
        );
      const parent = ctx.store.getGeneration(g.parentId);
      if (!parent)
        throw new Refusal(
          'The version before this edit was deleted, so I cannot go back to it. Press **History** to see the versions I still have.',
        );
      target = parent;
      heading = `↩️ Undid ${quote(g.requestText)}: this is the version before it.`;
    } else {
      heading = '';
    }
    const h = ctx.flows.history(target);
    const v = h.versions[h.versions.length - 1]!;
    if (parsed.verb === 'continue')
      heading = `⏪ Back to v${v.number} of ${quote(h.versions[0]!.generation.requestText)}: ${quote(v.label)}.`;
    await ix.deferReply();
    const limit = Math.min(ctx.config.limits.attachmentSizeLimit, ix.attachmentSizeLimit ?? Infinity);
    const posted = await respond(ix, await showVersion(v, heading, { canPaint: ctx.flows.canPaint, limit }));
    // From now on replies to this message (and its buttons) change that version: no painting needed.
    ctx.store.linkMessage(posted.id, posted.channelId, target.id, 'result');
    return;
  }
  // reroll
  await ctx.flows.precheck(requester, undefined, { paints: true });
  await ix.deferReply();
  const prepared = await ctx.flows.reroll(g, requester, interactionTarget(ix));
  await ctx.attach(
    prepared,
    await respond(ix, showPrepared(prepared, ctx.flows.noModelText(), `🎲 New seed for ${quote(g.requestText)}`)),
  );
}

async function onModal(ix: ModalSubmitInteraction, ctx: BotContext): Promise<void> {
  const parsed = parseCustomId(ix.customId);
  if (!parsed || parsed.verb !== EDIT_MODAL) throw new Refusal('That form is not one I know.');
  const g = findGeneration(ctx, parsed.generationId);
  const requester = requesterOf(ix);
  const denied = ctx.flows.access.control(g, requester);
  if (denied) throw new Refusal(denied);
  const instruction = ix.fields.getTextInputValue(EDIT_INPUT);
  await ctx.flows.precheck(requester, instruction, { paints: true });
  await ix.deferReply();
  const outcome = await ctx.flows.edit(g, instruction, requester, interactionTarget(ix));
  if (outcome.kind === 'clarify') {
    const posted = await respond(ix, {
      content: clip(
        `❓ ${outcome.question}\n-# Reply to this message with the answer, or press **Edit** on the image again.`,
      ),
      files: [],
      components: [],
      allowedMentions: NO_MENTIONS,
    });
    ctx.store.linkMessage(posted.id, posted.channelId, g.id, 'question', [instruction, outcome.question]);
    return;
  }
  if (outcome.kind === 'nothing') {
    await ix.editReply({ content: clip(`🤔 ${outcome.message}`), allowedMentions: NO_MENTIONS });
    return;
  }
  await ctx.attach(outcome, await respond(ix, showEditOutcome(outcome, ctx.flows.noModelText())));
}

/** Every failure ends in a message on the user's request, never in a stuck "thinking…". */
export function errorText(e: unknown): string {
  if (e instanceof Refusal) return e.message;
  return `⚠️ Something went wrong on my side: ${(e as Error)?.message ?? String(e)}.\nTry again in a moment; if it keeps happening, tell the bot's operator.`;
}

async function showError(ix: RepliableInteraction, e: unknown): Promise<void> {
  if (!(e instanceof Refusal)) log.error({ err: e, interaction: ix.id }, 'interaction failed');
  const content = clip(errorText(e));
  try {
    if (ix.deferred || ix.replied) {
      await ix.editReply({ content, files: [], attachments: [], components: [], allowedMentions: NO_MENTIONS });
    } else {
      await ix.reply({ content, flags: MessageFlags.Ephemeral, allowedMentions: NO_MENTIONS });
    }
  } catch (e2) {
    // The token may be gone (slow failure after 15 min) or the acknowledgement too late: say it in the channel.
    if (!isTokenGone(e2) && discordCode(e2) !== DiscordCode.AlreadyAcknowledged)
      log.warn({ err: e2 }, 'could not show an error on the interaction');
    const channel = ix.channel;
    if (channel?.isSendable()) {
      await channel
        .send({ content: clip(`<@${ix.user.id}> ${content}`), allowedMentions: { users: [ix.user.id] } })
        .catch((e3: unknown) => log.error({ err: e3 }, 'could not report an error anywhere'));
    }
  }
}
