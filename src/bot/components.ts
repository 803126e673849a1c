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

/** What a button does; its custom_id is `<verb>:<generation id>`, resolved from SQLite, so it survives restarts. */
export const VERBS = ['reroll', 'layout', 'edit', 'delete'] as const;
export type Verb = (typeof VERBS)[number];
export const EDIT_MODAL = 'editmodal';
export const EDIT_INPUT = 'instruction';

const CUSTOM_ID = /^(reroll|layout|edit|delete|editmodal):([A-Za-z0-9_-]{1,64})$/;

export function parseCustomId(customId: string): { verb: Verb | typeof EDIT_MODAL; generationId: string } | undefined {
  const m = CUSTOM_ID.exec(customId);
  return m ? { verb: m[1] as Verb | typeof EDIT_MODAL, generationId: m[2]! } : undefined;
}

type Row = APIActionRowComponent<APIComponentInMessageActionRow>;

/** Buttons under a finished image (or a layout, when nothing can be painted). */
export function resultButtons(generationId: string, { canPaint }: { canPaint: boolean }): Row[] {
  const row = new ActionRowBuilder<ButtonBuilder>();
  if (canPaint) row.addComponents(new ButtonBuilder().setCustomId(`reroll:${generationId}`).setLabel('Reroll').setEmoji('🎲').setStyle(ButtonStyle.Primary));
  row.addComponents(
    new ButtonBuilder().setCustomId(`layout:${generationId}`).setLabel('Layout').setEmoji('🗺️').setStyle(ButtonStyle.Secondary),
    new ButtonBuilder().setCustomId(`edit:${generationId}`).setLabel('Edit').setEmoji('✏️').setStyle(ButtonStyle.Secondary),
    new ButtonBuilder().setCustomId(`delete:${generationId}`).setLabel('Delete').setEmoji('🗑️').setStyle(ButtonStyle.Danger),
  );
  return [row.toJSON()];
}

/** While a job waits or runs, Delete is the only button: it cancels the job. */
export function pendingButtons(generationId: string): Row[] {
  return [
    new ActionRowBuilder<ButtonBuilder>()
      .addComponents(new ButtonBuilder().setCustomId(`delete:${generationId}`).setLabel('Cancel and delete').setEmoji('🗑️').setStyle(ButtonStyle.Danger))
      .toJSON(),
  ];
}

/** After a failure: try again or clear it away. */
export function failedButtons(generationId: string, { canPaint }: { canPaint: boolean }): Row[] {
  const row = new ActionRowBuilder<ButtonBuilder>();
  if (canPaint) row.addComponents(new ButtonBuilder().setCustomId(`reroll:${generationId}`).setLabel('Try again').setEmoji('🎲').setStyle(ButtonStyle.Primary));
  row.addComponents(new ButtonBuilder().setCustomId(`delete:${generationId}`).setLabel('Delete').setEmoji('🗑️').setStyle(ButtonStyle.Danger));
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
