import { uuidv7 } from 'uuidv7'

/** Opaque, time-sortable id (UUIDv7). */
export const newId = (): string => uuidv7()
