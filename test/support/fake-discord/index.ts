export {
  FakeDiscord,
  type FakeDiscordOptions,
  type FakeInteraction,
  type RecordedRequest,
  type RecordedFile,
} from './server.ts';
export {
  snowflake,
  Permission,
  Intent,
  type ApiMessage,
  type ApiUser,
  type ApiChannel,
  type ApiAttachment,
} from './model.ts';
