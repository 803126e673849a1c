import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  ModalBuilder,
  TextInputBuilder,
  TextInputStyle,
  type APIActionRowComponent,
  type APIComponentInMessageActionRow,
} from 'discord.js';
import type { Generation } from '../store/schema.ts';

/**
 * What a button does; its custom_id is `<verb>:<generation id>`, resolved from SQLite, so it survives restarts.
 * `history` shows the chain of versions; `continue:<id>` (on the history message) brings version <id> back as
 * the one to reply to; `undo` brings back the version an edit started from.
 */
export const VERBS = ['reroll', 'layout', 'edit', 'delete', 'history', 'undo', 'continue'] as const;
export type Verb = (typeof VERBS)[number];
export const EDIT_MODAL = 'editmodal';
export const EDIT_INPUT = 'instruction';

const CUSTOM_ID = /^(reroll|layout|edit|delete|history|undo|continue|editmodal):([A-Za-z0-9_-]{1,64})$/;

/** Versions a history message offers to continue from (4 rows of 5 buttons; the oldest are left out). */
export const HISTORY_MAX = 20;

/** An edit (a repaint, or a layout change painted afresh) can be undone: its parent comes back. */
export function canUndo(g: Pick<Generation, 'parentId' | 'kind' | 'planner'>): boolean {
  return g.parentId !== null && (g.kind === 'repaint' || (g.planner ?? '').startsWith('edit:'));
}

export function parseCustomId(customId: string): { verb: Verb | typeof EDIT_MODAL; generationId: string } | undefined {
  const m = CUSTOM_ID.exec(customId);
  return m ? { verb: m[1] as Verb | typeof EDIT_MODAL, generationId: m[2]! } : undefined;
}

type Row = APIActionRowComponent<APIComponentInMessageActionRow>;

/** Buttons under a finished image (or a layout, when nothing can be painted); Undo only under an edit. */
export function resultButtons(
  generationId: string,
  { canPaint, undo = false }: { canPaint: boolean; undo?: boolean },
): Row[] {
  const row = new ActionRowBuilder<ButtonBuilder>();
  if (canPaint)
    row.addComponents(
      new ButtonBuilder()
        .setCustomId(`reroll:${generationId}`)
        .setLabel('Reroll')
        .setEmoji('🎲')
        .setStyle(ButtonStyle.Primary),
    );
  row.addComponents(
    new ButtonBuilder()
      .setCustomId(`layout:${generationId}`)
      .setLabel('Layout')
      .setEmoji('🗺️')
      .setStyle(ButtonStyle.Secondary),
    new ButtonBuilder()
      .setCustomId(`edit:${generationId}`)
      .setLabel('Edit')
      .setEmoji('✏️')
      .setStyle(ButtonStyle.Secondary),
    new ButtonBuilder()
      .setCustomId(`history:${generationId}`)
      .setLabel('History')
      .setEmoji('🕰️')
      .setStyle(ButtonStyle.Secondary),
    new ButtonBuilder()
      .setCustomId(`delete:${generationId}`)
      .setLabel('Delete')
      .setEmoji('🗑️')
      .setStyle(ButtonStyle.Danger),
  );
  const rows = [row.toJSON()];
  if (undo) {
    rows.push(
      new ActionRowBuilder<ButtonBuilder>()
        .addComponents(
          new ButtonBuilder()
            .setCustomId(`undo:${generationId}`)
            .setLabel('Undo')
            .setEmoji('↩️')
            .setStyle(ButtonStyle.Secondary),
        )
        .toJSON(),
    );
  }
  return rows;
}

/** One "continue from" button per version, oldest first, labelled v1, v2, …; the current one disabled. */
export function historyButtons(versions: { id: string; number: number; current: boolean }[]): Row[] {
  const rows: Row[] = [];
  for (let i = 0; i < versions.length; i += 5) {
    const row = new ActionRowBuilder<ButtonBuilder>();
    for (const v of versions.slice(i, i + 5)) {
      row.addComponents(
        new ButtonBuilder()
          .setCustomId(`continue:${v.id}`)
          .setLabel(`Continue from v${v.number}`)
          .setStyle(v.current ? ButtonStyle.Primary : ButtonStyle.Secondary),
      );
    }
    rows.push(row.toJSON());
  }
  return rows;
}

/** While a job waits or runs, Delete is the only button: it cancels the job. */
export function pendingButtons(generationId: string): Row[] {
  return [
    new ActionRowBuilder<ButtonBuilder>()
      .addComponents(
        new ButtonBuilder()
          .setCustomId(`delete:${generationId}`)
          .setLabel('Cancel and delete')
          .setEmoji('🗑️')
          .setStyle(ButtonStyle.Danger),
      )
      .toJSON(),
  ];
}

/** After a failure: try again or clear it away. */
export function failedButtons(generationId: string, { canPaint }: { canPaint: boolean }): Row[] {
  const row = new ActionRowBuilder<ButtonBuilder>();
  if (canPaint)
    row.addComponents(
      new ButtonBuilder()
        .setCustomId(`reroll:${generationId}`)
        .setLabel('Try again')
        .setEmoji('🎲')
        .setStyle(ButtonStyle.Primary),
    );
  row.addComponents(
    new ButtonBuilder()
      .setCustomId(`delete:${generationId}`)
      .setLabel('Delete')
      .setEmoji('🗑️')
      .setStyle(ButtonStyle.Danger),
  );
  return [row.toJSON()];
}

/** The Edit button's modal: the way to ask for a change without the MessageContent intent. */
export function editModal(generationId: string): ModalBuilder {
  return new ModalBuilder()
    .setCustomId(`${EDIT_MODAL}:${generationId}`)
    .setTitle('Change this image')
    .addComponents(
      new ActionRowBuilder<TextInputBuilder>().addComponents(
        new TextInputBuilder()
          .setCustomId(EDIT_INPUT)
          .setLabel('What should change?')
          .setPlaceholder('e.g. change the left cat to a dog, make the sky stormy')
          .setStyle(TextInputStyle.Paragraph)
          .setMinLength(2)
          .setMaxLength(500)
          .setRequired(true),
      ),
    );
}
