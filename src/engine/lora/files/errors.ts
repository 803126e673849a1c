import { UserError } from '../../../config/errors.ts';

/** A LoRA file that cannot be used; the message names the file and says what it seems to be and what to do. */
export class LoraFileError extends UserError {
  constructor(message: string) {
    super(message, 1);
    this.name = 'LoraFileError';
  }
}
