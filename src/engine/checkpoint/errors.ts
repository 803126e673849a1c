import { UserError } from '../../config/errors.ts';

/** A checkpoint folder that cannot be used as it is; the message names the file (and tensor) and what to do. */
export class CheckpointError extends UserError {
  constructor(message: string) {
    super(message, 1);
    this.name = 'CheckpointError';
  }
}
