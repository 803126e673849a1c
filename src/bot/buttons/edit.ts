import type { ButtonAction } from '../context.ts';
import { editModal } from '../components.ts';

/** Edit: a modal asks what should change (works without the MessageContent intent). */
export const button: ButtonAction = {
  verb: 'edit',
  async execute(ix, g) {
    // A modal must be the first answer: no deferring here.
    await ix.showModal(editModal(g.id));
  },
};
