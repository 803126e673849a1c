import {
  MessageFlags,
  type AutocompleteInteraction,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type Interaction,
  type ModalSubmitInteraction,
  type RepliableInteraction,
} from 'discord.js';
import { childLogger } from '../log/logger.ts';
import type { Generation } from '../store/schema.ts';
import { BUTTONS } from './buttons/index.ts';
import type { BotContext } from './context.ts';
import { EDIT_INPUT, EDIT_MODAL, parseCustomId, type Verb } from './components.ts';
import { answerEdit } from './edit-reply.ts';
import { DiscordCode, Refusal, discordCode, failureText, isTokenGone } from './errors.ts';
import { interactionTarget, requesterOf, respond } from './present.ts';
import { clip, NO_MENTIONS } from './text.ts';

const log = childLogger('interactions');

/** The one entry point for every interaction: slash commands, buttons (`verb:<generation id>`) and modals. */
export async function onInteraction(ix: Interaction, ctx: BotContext): Promise<void> {
  if (ix.isAutocomplete()) return onAutocomplete(ix, ctx);
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
  const command = ctx.commands.get(ix.commandName);
  if (!command)
    throw new Refusal(`I do not have a /${ix.commandName} command any more; the command list may be out of date.`);
  await command.execute(ix, ctx);
}

/** Suggestions are best effort: a failure shows the user an empty list, never an error. */
async function onAutocomplete(ix: AutocompleteInteraction, ctx: BotContext): Promise<void> {
  const command = ctx.commands.get(ix.commandName);
  try {
    if (command?.autocomplete) await command.autocomplete(ix, ctx);
    else await ix.respond([]);
  } catch (e) {
    log.warn({ err: e, command: ix.commandName }, 'autocomplete failed');
    if (!ix.responded) await ix.respond([]).catch(() => {});
  }
}

const NO_RECORD = 'I have no record of that image any more (it may have been deleted). Use /imagine to make a new one.';

/**
 * The generation a button acts on. A custom_id is whatever the client sends, so it is only believed when
 * it agrees with the message the button is on: that message's generation, or, for the Continue buttons of
 * a history message, a version in that generation's history.
 */
function generationForButton(ix: ButtonInteraction, ctx: BotContext, verb: Verb, id: string): Generation {
  const link = ctx.store.messageLink(ix.message.id);
  if (!link) throw new Refusal(NO_RECORD);
  const agrees =
    link.generationId === id ||
    (verb === 'continue' && link.role === 'history' && ctx.store.lineage(link.generationId).some((v) => v.id === id));
  if (!agrees) {
    log.warn(
      { user: ix.user.id, message: ix.message.id, customId: ix.customId, linked: link.generationId },
      'a button named another generation than its message (forged custom_id?)',
    );
    throw new Refusal('That button does not belong to this message, so I did nothing.');
  }
  const g = ctx.store.getGeneration(id);
  if (!g) throw new Refusal(NO_RECORD);
  return g;
}

async function onButton(ix: ButtonInteraction, ctx: BotContext): Promise<void> {
  const parsed = parseCustomId(ix.customId);
  const action = parsed && parsed.verb !== EDIT_MODAL ? BUTTONS.get(parsed.verb) : undefined;
  if (!parsed || !action) throw new Refusal('That button is not one I know (it may come from an older version of me).');
  const g = generationForButton(ix, ctx, action.verb, parsed.generationId);
  const requester = requesterOf(ix);
  if (!action.open) {
    const denied = ctx.flows.access.control(g, requester);
    if (denied) throw new Refusal(denied);
  }
  if (action.renders) {
    const refusal = ctx.flows.limiter.render(requester.userId);
    if (refusal) throw new Refusal(refusal);
  }
  await action.execute(ix, g, ctx);
}

async function onModal(ix: ModalSubmitInteraction, ctx: BotContext): Promise<void> {
  const parsed = parseCustomId(ix.customId);
  if (!parsed || parsed.verb !== EDIT_MODAL) throw new Refusal('That form is not one I know.');
  // The form came from a button on a message: the same rule as for buttons.
  const link = ix.message ? ctx.store.messageLink(ix.message.id) : undefined;
  if (ix.message && link?.generationId !== parsed.generationId)
    throw new Refusal('That form does not belong to this message, so I did nothing.');
  const g = ctx.store.getGeneration(parsed.generationId);
  if (!g) throw new Refusal(NO_RECORD);
  const requester = requesterOf(ix);
  const denied = ctx.flows.access.control(g, requester);
  if (denied) throw new Refusal(denied);
  const instruction = ix.fields.getTextInputValue(EDIT_INPUT);
  const slot = await ctx.flows.precheck(requester, instruction, { paints: true });
  try {
    await ix.deferReply();
    const outcome = await ctx.flows.edit(g, instruction, requester, interactionTarget(ix));
    await answerEdit(ctx, {
      parent: g,
      instruction,
      history: [],
      outcome,
      post: (shown) => respond(ix, shown),
      viaForm: true,
    });
  } finally {
    slot.release();
  }
}

async function showError(ix: RepliableInteraction, e: unknown): Promise<void> {
  const content = clip(failureText(e, log, { interaction: ix.id }));
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
