import fs from 'node:fs'
import os from 'node:os'
import { isMainThread } from 'node:worker_threads'

/**
 * The niceness of background work (transcoding, model training): on a machine the API shares, the
 * threads answering requests get the CPU first; on an idle one background work runs as fast as ever.
 */
export const BACKGROUND_NICE = 10

/**
 * Lowers a child process's CPU priority to BACKGROUND_NICE; false where the OS refused. On Linux
 * each of its threads is lowered (setpriority on a process id changes its main thread alone);
 * threads it starts later take the priority of the thread that starts them.
 */
export function lowerProcessPriority(pid: number): boolean {
  try {
    os.setPriority(pid, BACKGROUND_NICE)
  } catch {
    return false
  }
  if (process.platform === 'linux') lowerOtherThreads(pid)
  return true
}

/** Lowers every thread of process `pid` but its main one to BACKGROUND_NICE (Linux); how many it lowered. */
function lowerOtherThreads(pid: number): number {
  let tids: string[] = []
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    // Exited already.
  }
  let lowered = 0
  for (const tid of tids)
    try {
      if (Number(tid) !== pid) {
        os.setPriority(Number(tid), BACKGROUND_NICE)
        lowered++
      }
    } catch {
      // That thread ended meanwhile.
    }
  return lowered
}

/**
 * Lowers the calling thread's CPU priority to BACKGROUND_NICE (a worker thread doing background
 * work). Linux only: there a thread has its own id (read from /proc/thread-self) and setpriority
 * on that id changes that thread alone; elsewhere nothing changes. Returns whether it did.
 */
export function lowerThreadPriority(): boolean {
  if (process.platform !== 'linux') return false
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop())
    if (!Number.isSafeInteger(tid) || tid <= 0) return false
    os.setPriority(tid, BACKGROUND_NICE)
    return true
  } catch {
    return false
  }
}

/**
 * Lowers every other thread of this process to BACKGROUND_NICE, so that the thread answering
 * requests (the caller: the process's main thread) gets a core first whenever threads contend:
 * V8's helpers (parallel scavenges, concurrent marking, compilation), libuv's pool (file system,
 * crypto) and worker threads such as SQLite's writer. On two cores a major collection's four
 * marking threads kept the event loop waiting for the CPU for tens of milliseconds (starts paced at
 * 4,800/s; see the README). Threads started later take the priority of the thread that starts them
 * (libuv starts its whole pool at its first use: call this after some file system work). Linux
 * only, and only from the main thread (a worker would lower the main thread itself); nothing when
 * the process already runs at BACKGROUND_NICE or lower. Returns how many threads it lowered.
 */
export function lowerHelperThreads(): number {
  if (process.platform !== 'linux' || !isMainThread) return 0
  if (os.getPriority(process.pid) >= BACKGROUND_NICE) return 0
  return lowerOtherThreads(process.pid)
}
