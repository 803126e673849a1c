import { UserError } from '../../config/errors.ts';

/** A weights file that cannot be used; the message names the file and, where known, the tensor. */
export class WeightsError extends UserError {
  constructor(message: string) {
    super(message, 1);
    this.name = 'WeightsError';
  }
}
