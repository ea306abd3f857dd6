/**
 * sysv-shm: System V shared memory for Node.js and TypeScript on Linux.
 *
 * ```ts
 * import { SharedMemory, ftok } from 'sysv-shm'
 * const shm = SharedMemory.create(ftok('/tmp', 1), 4096, { exclusive: false })
 * shm.write('hello')
 * ```
 * @packageDocumentation
 */
export { ShmError } from './src/errors'
export {
  IPC_PRIVATE,
  SharedMemory,
  ftok,
  limits,
  listSegments,
  type CreateOptions,
  type Limits,
  type OpenOptions,
  type SegmentInfo,
  type SetOptions,
} from './src/shared-memory'
export type { WaitAsyncOptions, WaitResult } from './src/futex'
export {
  Channel,
  type ChannelCreateOptions,
  type ChannelWait,
  type ChannelWaitOptions,
  type RecvAsyncOptions,
} from './src/channel'
export { Mutex, MutexGuard, MUTEX_SIZE, type MutexLockAsyncOptions } from './src/mutex'
export {
  Publisher,
  Subscriber,
  topicKey,
  type PublishAsyncOptions,
  type PublisherOptions,
  type PublishOptions,
  type PubsubPolicy,
  type SubscriberOptions,
  type SubscriberReceiveAsyncOptions,
} from './src/pubsub'
export {
  Semaphore,
  listSemaphores,
  type SemaphoreAsyncOptions,
  type SemaphoreCreateOptions,
  type SemaphoreInfo,
  type SemaphoreOpOptions,
  type SemaphoreWaiters,
  type SemaphoreWaitOptions,
} from './src/semaphore'
export {
  MessageQueue,
  listQueues,
  type QueueCreateOptions,
  type QueueInfo,
  type QueueLimits,
  type QueueMessage,
  type QueueSetOptions,
  type ReceiveAsyncOptions,
  type ReceiveOptions,
  type ReceiveSelector,
  type SendAsyncOptions,
  type SendOptions,
} from './src/message-queue'
