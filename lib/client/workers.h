/* lib/client/workers.h — the threads that run callbacks (CBT-1, CBT-2, ORD-3).
 *
 * Why not GThreadPool: it wakes (or starts) one thread per task, and with callbacks of a few
 * microseconds that futex hand-off was most of a receiver's cost (BENCHMARKS.md). Here one
 * woken thread takes task after task from the queue while it has any; more threads join only
 * when the queue has made no progress for WORKERS_STALL_MS (a callback blocks), so a callback
 * still never waits for another for longer than that, however long the other one takes.
 * Tasks start in the order they were pushed (ORD-3); threads idle for WORKERS_IDLE_MS end.
 *
 * Threads: workers_push() and workers_check() from any thread; the client calls them from its
 * dispatcher. */
#pragma once

#include <stddef.h>

#define WORKERS_STALL_MS 1
#define WORKERS_IDLE_MS 500

typedef struct workers workers_t;
typedef void (*workers_fn)(void *task);

int workers_new(workers_fn run, workers_t **ret);

/* Queues tasks[0..n) in order and makes sure a thread will take them. */
void workers_push(workers_t *w, void *const *tasks, size_t n);

/* Adds a thread when queued tasks have waited WORKERS_STALL_MS without any being taken.
 * Returns the ms after which it wants to be called again (-1: nothing is queued). */
int workers_check(workers_t *w);
