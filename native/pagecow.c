// The few system calls pagecow needs that Node's fs module does not offer exactly:
//   utimensat(2)  set times to the nanosecond (fs.utimes takes a double of seconds: ~240 ns steps)
//   mknod(2)      FIFOs and device nodes (Node has no binding at all)
//   poll(2)       readiness of /dev/fuse on the event loop (libuv's uv_poll), so requests are read
//                 where they are served instead of by threads parked in the pool
//   splice(2)     a FUSE read reply straight from the lower's page cache (no copy through memory
//                 of ours: Node cannot splice)
//   SO_PEERCRED   who is on the other end of a Unix socket (the control socket serves its owner only)
// and the page checksums (XXH64), many pages per call: through @node-rs/xxhash a 4 KiB page cost
// a Node-API call and a BigInt each, and hashed at a third of the speed of this loop.
// Node-API only (no V8 headers), so the addon builds once per ABI, not per Node release; libuv's
// own header for uv_poll, whose API is stable across libuv 1.x.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <node_api.h>
#include <uv.h>

#define CHECK(call) do { if ((call) != napi_ok) return NULL; } while (0)

// A JS Error with `code` and `errno` set as node:fs sets them, so fromSystemError() reads it.
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  static const struct { int n; const char *code; } codes[] = {
    { ENOENT, "ENOENT" }, { EACCES, "EACCES" }, { EPERM, "EPERM" }, { EROFS, "EROFS" },
    { ENOTDIR, "ENOTDIR" }, { ELOOP, "ELOOP" }, { ENAMETOOLONG, "ENAMETOOLONG" }, { EINVAL, "EINVAL" },
    { EIO, "EIO" }, { ENOSPC, "ENOSPC" }, { EBADF, "EBADF" }, { EOVERFLOW, "EOVERFLOW" }, { EEXIST, "EEXIST" },
    { EDQUOT, "EDQUOT" }, { EAGAIN, "EAGAIN" }, { ENODEV, "ENODEV" }, { E2BIG, "E2BIG" },
  };
  const char *code = "EIO";
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) if (codes[i].n == err) code = codes[i].code;
  char message[160];
  snprintf(message, sizeof message, "%s, %s", code, strerror(err));
  napi_value msg, code_value, errno_value, syscall_value, error;
  CHECK(napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg));
  CHECK(napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value));
  CHECK(napi_create_int32(env, -err, &errno_value));
  CHECK(napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value));
  CHECK(napi_create_error(env, code_value, msg, &error));
  CHECK(napi_set_named_property(env, error, "errno", errno_value));
  CHECK(napi_set_named_property(env, error, "syscall", syscall_value));
  napi_throw(env, error);
  return NULL;
}

static int get_timespec(napi_env env, napi_value sec, napi_value nsec, struct timespec *ts) {
  int64_t s, ns;
  if (napi_get_value_int64(env, sec, &s) != napi_ok || napi_get_value_int64(env, nsec, &ns) != napi_ok) return 0;
  if (ns < 0 || ns > 999999999) return 0;
  ts->tv_sec = (time_t)s;
  ts->tv_nsec = (long)ns;
  return 1;
}

// utimensat(path: Buffer (NUL-terminated), atimeSec, atimeNsec, mtimeSec, mtimeNsec): a symlink
// itself, never its target (AT_SYMLINK_NOFOLLOW).
static napi_value utimensat_nofollow(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data;
  size_t length;
  struct timespec times[2];
  if (argc != 5 || napi_get_buffer_info(env, argv[0], &data, &length) != napi_ok || length == 0 ||
      ((const char *)data)[length - 1] != '\0' || !get_timespec(env, argv[1], argv[2], &times[0]) ||
      !get_timespec(env, argv[3], argv[4], &times[1])) {
    napi_throw_type_error(env, "EINVAL", "utimensat(path: NUL-terminated Buffer, atimeSec, atimeNsec, mtimeSec, mtimeNsec)");
    return NULL;
  }
  if (utimensat(AT_FDCWD, (const char *)data, times, AT_SYMLINK_NOFOLLOW) != 0) return throw_errno(env, errno, "utimensat");
  return NULL;
}

// mknod(path: Buffer (NUL-terminated), mode (type and permission bits), rdev (Linux encoding)).
static napi_value mknod_path(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data;
  size_t length;
  uint32_t mode;
  int64_t rdev;
  if (argc != 3 || napi_get_buffer_info(env, argv[0], &data, &length) != napi_ok || length == 0 ||
      ((const char *)data)[length - 1] != '\0' || napi_get_value_uint32(env, argv[1], &mode) != napi_ok ||
      napi_get_value_int64(env, argv[2], &rdev) != napi_ok || rdev < 0) {
    napi_throw_type_error(env, "EINVAL", "mknod(path: NUL-terminated Buffer, mode, rdev)");
    return NULL;
  }
  if (mknod((const char *)data, (mode_t)mode, (dev_t)rdev) != 0) return throw_errno(env, errno, "mknod");
  return NULL;
}


// ---- readiness of a descriptor on the event loop ----

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int started;
  int closed;
} watch_t;

static void watch_fired(uv_poll_t *handle, int status, int events) {
  (void)events;
  watch_t *w = (watch_t *)handle->data;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, recv, argv[1], result;
  // MakeCallback wants an object as the receiver: the global one, as for any plain function.
  if (napi_get_reference_value(env, w->callback, &callback) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, status, &argv[0]) == napi_ok) {
    if (napi_make_callback(env, w->context, recv, callback, 1, argv, &result) == napi_pending_exception) {
      napi_value error;
      // A throw in the callback is the process's uncaught exception, as anywhere on the loop.
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static watch_t *get_watch(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "EINVAL", "expected a watch made by watchReadable()");
    return NULL;
  }
  return (watch_t *)data;
}

// watchReadable(fd, callback(status)): call back on the event loop whenever fd is readable (status
// 0) or in error (a negative libuv status; the watch has then stopped). Sets fd non-blocking.
// Returns the watch for watchPause/watchResume/watchClose; close it before closing fd.
static napi_value watch_readable(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  napi_valuetype type;
  if (argc != 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_typeof(env, argv[1], &type) != napi_ok ||
      type != napi_function) {
    napi_throw_type_error(env, "EINVAL", "watchReadable(fd, callback)");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  watch_t *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, ENOMEM, "watchReadable");
  w->env = env;
  int err = uv_poll_init(loop, &w->poll, fd);
  if (err != 0) {
    free(w);
    return throw_errno(env, -err, "uv_poll_init");
  }
  w->poll.data = w;
  napi_value name, external;
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok || napi_create_string_utf8(env, "pagecow:watch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->context) != napi_ok || napi_create_external(env, w, NULL, NULL, &external) != napi_ok) {
    // Not started: the handle can be closed and freed without ever having fired.
    w->closed = 1;
    uv_close((uv_handle_t *)&w->poll, NULL);
    return NULL; // leaks w (a few bytes) rather than free memory libuv may still touch this turn
  }
  err = uv_poll_start(&w->poll, UV_READABLE, watch_fired);
  if (err != 0) return throw_errno(env, -err, "uv_poll_start");
  w->started = 1;
  return external;
}

static napi_value watch_pause(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  watch_t *w = argc == 1 ? get_watch(env, argv[0]) : NULL;
  if (w == NULL) return NULL;
  if (!w->closed && w->started) {
    uv_poll_stop(&w->poll);
    w->started = 0;
  }
  return NULL;
}

static napi_value watch_resume(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  watch_t *w = argc == 1 ? get_watch(env, argv[0]) : NULL;
  if (w == NULL) return NULL;
  if (!w->closed && !w->started) {
    int err = uv_poll_start(&w->poll, UV_READABLE, watch_fired);
    if (err != 0) return throw_errno(env, -err, "uv_poll_start");
    w->started = 1;
  }
  return NULL;
}

static void watch_freed(uv_handle_t *handle) {
  free(handle->data);
}

// watchClose(watch): stop watching for good (the descriptor may be closed right after); idempotent.
static napi_value watch_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  watch_t *w = argc == 1 ? get_watch(env, argv[0]) : NULL;
  if (w == NULL || w->closed) return NULL;
  w->closed = 1;
  // uv_poll_stop takes the descriptor out of epoll now; the memory goes once libuv lets go of it.
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  uv_close((uv_handle_t *)&w->poll, watch_freed);
  return NULL;
}

// ---- FUSE read replies spliced from a file's page cache ----

#define PAGE 4096
// One pipe for every reply a thread sends: a thread splices its replies one at a time (a server
// in a worker thread gets its own pipe).
static __thread int reply_pipe[2] = { -1, -1 };
static __thread size_t pipe_slots = 0;
static char zero_page[PAGE] __attribute__((aligned(PAGE)));
static __thread char drain_buffer[4096];

// Empty the pipe after a failure, so the next reply starts clean.
static void drain_pipe(void) {
  for (;;) {
    ssize_t n = read(reply_pipe[0], drain_buffer, sizeof drain_buffer);
    if (n <= 0) break;
  }
}

// The pipe's buffers (pages) once made: the most an unprivileged process may have (1 MiB,
// /proc/sys/fs/pipe-max-size) unless more is allowed.
// The thread's environment ends (a worker thread exits): its pipe goes with it, or every worker
// that ever spliced would leave two descriptors behind.
static void close_pipe(void *unused) {
  (void)unused;
  if (reply_pipe[0] < 0) return;
  close(reply_pipe[0]);
  close(reply_pipe[1]);
  reply_pipe[0] = reply_pipe[1] = -1;
  pipe_slots = 0;
}

static int open_pipe(napi_env env) {
  if (reply_pipe[0] >= 0) return 0;
  if (pipe2(reply_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return errno;
  if (napi_add_env_cleanup_hook(env, close_pipe, NULL) != napi_ok) {
    close_pipe(NULL);
    return ENOMEM;
  }
  if (fcntl(reply_pipe[1], F_SETPIPE_SZ, 2 << 20) < 0) (void)fcntl(reply_pipe[1], F_SETPIPE_SZ, 1 << 20);
  int size = fcntl(reply_pipe[1], F_GETPIPE_SZ);
  pipe_slots = size > 0 ? (size_t)size / PAGE : 1;
  return 0;
}

// Whether the byte at `position` of fd is in the page cache (a read of it would not wait).
static int cached(int fd, int64_t position) {
  char byte;
  struct iovec iov = { &byte, 1 };
  ssize_t n = preadv2(fd, &iov, 1, position, RWF_NOWAIT);
  return n >= 0;
}

// spliceReply(fuseFd, header: Buffer, fd, position, bytes, zeros): write one FUSE reply made of
// `header`, then `bytes` bytes of fd from `position`, then `zeros` zero bytes, without copying the
// file's bytes through user memory. Returns the bytes written, or a negative errno and writes
// nothing: -EAGAIN when the file's bytes are not all in the page cache (reading them would block
// the event loop: read them elsewhere), -E2BIG when the reply does not fit the pipe, -ENOENT when
// the kernel no longer waits for the reply (interrupted), other errors as splice(2) gives them.
static napi_value splice_reply(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fuse_fd, fd;
  int64_t position, bytes, zeros;
  void *header;
  size_t header_length;
  if (argc != 6 || napi_get_value_int32(env, argv[0], &fuse_fd) != napi_ok || napi_get_buffer_info(env, argv[1], &header, &header_length) != napi_ok ||
      header_length == 0 || header_length > PAGE || napi_get_value_int32(env, argv[2], &fd) != napi_ok || napi_get_value_int64(env, argv[3], &position) != napi_ok ||
      napi_get_value_int64(env, argv[4], &bytes) != napi_ok || napi_get_value_int64(env, argv[5], &zeros) != napi_ok || position < 0 || bytes < 0 || zeros < 0) {
    napi_throw_type_error(env, "EINVAL", "spliceReply(fuseFd, header: Buffer, fd, position, bytes, zeros)");
    return NULL;
  }
  napi_value result;
  int err = open_pipe(env);
  if (err != 0) {
    CHECK(napi_create_int64(env, -err, &result));
    return result;
  }
  // Pipe buffers: the header, the pages the file's bytes span, the zero pages.
  size_t slots = 1 + (size_t)((bytes == 0 ? 0 : (position % PAGE + bytes + PAGE - 1) / PAGE)) + (size_t)((zeros + PAGE - 1) / PAGE);
  int64_t done = -E2BIG;
  if (slots > pipe_slots) goto out;
  done = -EAGAIN;
  if (bytes > 0 && (!cached(fd, position) || !cached(fd, position + bytes - 1))) goto out;
  errno = 0;
  struct iovec iov = { header, header_length };
  if (vmsplice(reply_pipe[1], &iov, 1, 0) != (ssize_t)header_length) goto failed;
  for (loff_t at = position; at < position + bytes;) {
    ssize_t n = splice(fd, &at, reply_pipe[1], NULL, (size_t)(position + bytes - at), SPLICE_F_NONBLOCK);
    if (n < 0) goto failed;
    if (n == 0) goto failed; // the file ended early: shrunk underneath (EIO)
  }
  for (int64_t left = zeros; left > 0;) {
    struct iovec z = { zero_page, left < PAGE ? (size_t)left : PAGE };
    ssize_t n = vmsplice(reply_pipe[1], &z, 1, 0);
    if (n <= 0) goto failed; // EIO if it took nothing
    left -= n;
  }
  done = splice(reply_pipe[0], NULL, fuse_fd, NULL, header_length + (size_t)bytes + (size_t)zeros, 0);
  if (done < 0) goto failed;
  goto out;
failed:
  done = errno != 0 ? -errno : -EIO;
  drain_pipe();
out:
  CHECK(napi_create_int64(env, done, &result));
  return result;
}

// The most file bytes one spliced reply can carry (page-aligned, besides a header and no zeros).
static napi_value splice_capacity(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  int err = open_pipe(env);
  CHECK(napi_create_int64(env, err != 0 ? 0 : (int64_t)(pipe_slots - 1) * PAGE, &result));
  return result;
}

// peerCredentials(fd): { pid, uid, gid } of the process that connected the Unix socket `fd`, as
// the kernel recorded them at connect(2) (getsockopt SO_PEERCRED): they cannot be forged.
static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return throw_errno(env, EINVAL, "getsockopt");
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, errno, "getsockopt");
  napi_value result, pid, uid, gid;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_int64(env, cred.pid, &pid));
  CHECK(napi_create_int64(env, cred.uid, &uid));
  CHECK(napi_create_int64(env, cred.gid, &gid));
  CHECK(napi_set_named_property(env, result, "pid", pid));
  CHECK(napi_set_named_property(env, result, "uid", uid));
  CHECK(napi_set_named_property(env, result, "gid", gid));
  return result;
}

// ---- XXH64, written from the xxHash specification (doc/xxhash_spec.md, "XXH64 algorithm
// description"): the same digests as every other XXH64, so stores keep their sums ----

#define PRIME64_1 0x9E3779B185EBCA87ULL
#define PRIME64_2 0xC2B2AE3D27D4EB4FULL
#define PRIME64_3 0x165667B19E3779F9ULL
#define PRIME64_4 0x85EBCA77C2B2AE63ULL
#define PRIME64_5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Lanes are little-endian whatever the CPU.
static inline uint64_t lane64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

static inline uint64_t lane32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t lane) {
  return rotl64(acc + lane * PRIME64_2, 31) * PRIME64_1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t value) {
  return (acc ^ xxh_round(0, value)) * PRIME64_1 + PRIME64_4;
}

// Step 2 of the specification over `stripes` stripes of 32 bytes: acc holds the four lanes.
static void stripes_scalar(const uint8_t *p, size_t stripes, uint64_t acc[4]) {
  uint64_t a1 = acc[0], a2 = acc[1], a3 = acc[2], a4 = acc[3];
  for (size_t i = 0; i < stripes; i++, p += 32) {
    a1 = xxh_round(a1, lane64(p));
    a2 = xxh_round(a2, lane64(p + 8));
    a3 = xxh_round(a3, lane64(p + 16));
    a4 = xxh_round(a4, lane64(p + 24));
  }
  acc[0] = a1, acc[1] = a2, acc[2] = a3, acc[3] = a4;
}

static inline void lanes_init(uint64_t acc[4], uint64_t seed) {
  acc[0] = seed + PRIME64_1 + PRIME64_2;
  acc[1] = seed + PRIME64_2;
  acc[2] = seed;
  acc[3] = seed - PRIME64_1;
}

// Steps 3 to 6: `acc` the lanes after the stripes (unused when length < 32), `p` the bytes left
// after them (length % 32 when length >= 32), `length` the whole input's.
static uint64_t xxh64_finish(const uint64_t acc[4], const uint8_t *p, size_t length, uint64_t seed) {
  uint64_t h;
  if (length >= 32) {
    h = rotl64(acc[0], 1) + rotl64(acc[1], 7) + rotl64(acc[2], 12) + rotl64(acc[3], 18);
    for (int i = 0; i < 4; i++) h = xxh_merge(h, acc[i]);
  } else {
    h = seed + PRIME64_5;
  }
  h += (uint64_t)length;
  const uint8_t *end = p + (length >= 32 ? length % 32 : length);
  for (; end - p >= 8; p += 8) h = rotl64(h ^ xxh_round(0, lane64(p)), 27) * PRIME64_1 + PRIME64_4;
  if (end - p >= 4) {
    h = rotl64(h ^ (lane32(p) * PRIME64_1), 23) * PRIME64_2 + PRIME64_3;
    p += 4;
  }
  for (; p < end; p++) h = rotl64(h ^ (*p * PRIME64_5), 11) * PRIME64_1;
  h ^= h >> 33;
  h *= PRIME64_2;
  h ^= h >> 29;
  h *= PRIME64_3;
  h ^= h >> 32;
  return h;
}

// The four lanes of a stripe are four independent multiply chains: one 256-bit vector with
// AVX-512 (VL, DQ: 64-bit multiplies and rotates), and two pages side by side in a 512-bit one,
// four or eight pages in flight to cover the multiplies' latency. Checked at run time; the scalar loop
// elsewhere. The digests are the same either way (tested against @node-rs/xxhash).
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512 1
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl")))

AVX512 static void stripes_avx512(const uint8_t *p, size_t stripes, uint64_t acc[4]) {
  const __m256i p1 = _mm256_set1_epi64x((long long)PRIME64_1), p2 = _mm256_set1_epi64x((long long)PRIME64_2);
  __m256i a = _mm256_loadu_si256((const __m256i *)acc);
  for (size_t i = 0; i < stripes; i++, p += 32) {
    __m256i lane = _mm256_loadu_si256((const __m256i *)p);
    a = _mm256_mullo_epi64(_mm256_rol_epi64(_mm256_add_epi64(a, _mm256_mullo_epi64(lane, p2)), 31), p1);
  }
  _mm256_storeu_si256((__m256i *)acc, a);
}

AVX512 static inline __m512i two_stripes(const uint8_t *x, const uint8_t *y) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x)), _mm256_loadu_si256((const __m256i *)y), 1);
}

#define XXH_ROUND512(acc, lanes) _mm512_mullo_epi64(_mm512_rol_epi64(_mm512_add_epi64((acc), _mm512_mullo_epi64((lanes), p2)), 31), p1)

// Four inputs of `stripes` stripes each; acc holds their lanes, four after four.
AVX512 static void stripes_avx512_x4(const uint8_t *const in[4], size_t stripes, uint64_t acc[16]) {
  const __m512i p1 = _mm512_set1_epi64((long long)PRIME64_1), p2 = _mm512_set1_epi64((long long)PRIME64_2);
  __m512i a = _mm512_loadu_si512(acc), b = _mm512_loadu_si512(acc + 8);
  for (size_t at = 0; at < stripes * 32; at += 32) {
    a = XXH_ROUND512(a, two_stripes(in[0] + at, in[1] + at));
    b = XXH_ROUND512(b, two_stripes(in[2] + at, in[3] + at));
  }
  _mm512_storeu_si512(acc, a);
  _mm512_storeu_si512(acc + 8, b);
}

// Eight inputs: four chains of multiplies in flight instead of two (about 1.5x the speed of four
// inputs here: the multiplies' latency, not their count, bounds four).
AVX512 static void stripes_avx512_x8(const uint8_t *const in[8], size_t stripes, uint64_t acc[32]) {
  const __m512i p1 = _mm512_set1_epi64((long long)PRIME64_1), p2 = _mm512_set1_epi64((long long)PRIME64_2);
  __m512i a = _mm512_loadu_si512(acc), b = _mm512_loadu_si512(acc + 8), c = _mm512_loadu_si512(acc + 16), d = _mm512_loadu_si512(acc + 24);
  for (size_t at = 0; at < stripes * 32; at += 32) {
    a = XXH_ROUND512(a, two_stripes(in[0] + at, in[1] + at));
    b = XXH_ROUND512(b, two_stripes(in[2] + at, in[3] + at));
    c = XXH_ROUND512(c, two_stripes(in[4] + at, in[5] + at));
    d = XXH_ROUND512(d, two_stripes(in[6] + at, in[7] + at));
  }
  _mm512_storeu_si512(acc, a);
  _mm512_storeu_si512(acc + 8, b);
  _mm512_storeu_si512(acc + 16, c);
  _mm512_storeu_si512(acc + 24, d);
}

static int avx512_usable(void) {
  static int usable = -1;
  if (usable < 0) {
    __builtin_cpu_init();
    // libgcc also asks the OS (XCR0) whether it saves the 512-bit registers.
    usable = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  return usable;
}
#else
static int avx512_usable(void) { return 0; }
#endif

/** Forces the scalar loop (tests compare the two paths). */
static int scalar_only = 0;

static uint64_t xxh64(const uint8_t *p, size_t length, uint64_t seed) {
  uint64_t acc[4];
  size_t stripes = length / 32;
  if (stripes > 0) {
    lanes_init(acc, seed);
#ifdef HAVE_AVX512
    if (!scalar_only && avx512_usable()) stripes_avx512(p, stripes, acc);
    else
#endif
      stripes_scalar(p, stripes, acc);
  }
  return xxh64_finish(acc, p + stripes * 32, length, seed);
}

// XXH64 (seed 0) of `count` inputs of `length` bytes each, the input i at in + i × stride.
static void xxh64_many(const uint8_t *in, size_t stride, size_t length, size_t count, uint64_t *out) {
  size_t i = 0;
#ifdef HAVE_AVX512
  size_t stripes = length / 32;
  if (!scalar_only && stripes > 0 && avx512_usable()) {
    while (count - i >= 4) {
      int n = count - i >= 8 ? 8 : 4;
      const uint8_t *inputs[8];
      uint64_t acc[32];
      for (int k = 0; k < n; k++) {
        inputs[k] = in + (i + (size_t)k) * stride;
        lanes_init(acc + 4 * k, 0);
      }
      if (n == 8) stripes_avx512_x8(inputs, stripes, acc);
      else stripes_avx512_x4(inputs, stripes, acc);
      for (int k = 0; k < n; k++) out[i + (size_t)k] = xxh64_finish(acc + 4 * k, inputs[k] + stripes * 32, length, 0);
      i += (size_t)n;
    }
  }
#endif
  for (; i < count; i++) out[i] = xxh64(in + i * stride, length, 0);
}

// A page's checksum as the store keeps it: 0 means "no sum" in its tables, so a digest of 0 is 1.
static inline uint64_t page_sum(const uint8_t *p, size_t length) {
  uint64_t h = xxh64(p, length, 0);
  return h == 0 ? 1 : h;
}

// page_sum of `count` pages of `page_size` bytes in a row.
static void page_sums_many(const uint8_t *p, size_t page_size, size_t count, uint64_t *out) {
  xxh64_many(p, page_size, page_size, count, out);
  for (size_t i = 0; i < count; i++) if (out[i] == 0) out[i] = 1;
}

// The bytes of a Buffer or any typed array or view (Uint8Array, BigUint64Array…).
static int get_bytes(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is;
  if (napi_is_typedarray(env, value, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count, offset;
    napi_value buffer;
    void *base;
    if (napi_get_typedarray_info(env, value, &type, &count, &base, &buffer, &offset) != napi_ok) return 0;
    static const size_t widths[] = { [napi_int8_array] = 1, [napi_uint8_array] = 1, [napi_uint8_clamped_array] = 1,
      [napi_int16_array] = 2, [napi_uint16_array] = 2, [napi_int32_array] = 4, [napi_uint32_array] = 4,
      [napi_float32_array] = 4, [napi_float64_array] = 8, [napi_bigint64_array] = 8, [napi_biguint64_array] = 8 };
    if ((size_t)type >= sizeof widths / sizeof widths[0]) return 0;
    *data = base;
    *length = count * widths[type];
    return 1;
  }
  if (napi_is_dataview(env, value, &is) == napi_ok && is) {
    void *base;
    napi_value buffer;
    size_t offset;
    if (napi_get_dataview_info(env, value, length, &base, &buffer, &offset) != napi_ok) return 0;
    *data = base;
    return 1;
  }
  return 0;
}

// The 64-bit slots of a BigUint64Array.
static int get_sums(napi_env env, napi_value value, uint64_t **sums, size_t *count) {
  bool is;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  void *base;
  if (napi_is_typedarray(env, value, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, value, &type, count, &base, &buffer, &offset) != napi_ok || type != napi_biguint64_array) return 0;
  *sums = base;
  return 1;
}

// xxh64(bytes): the XXH64 digest (seed 0) of a whole Buffer or typed array, as a BigInt.
static napi_value xxh64_value(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *data;
  size_t length;
  if (argc != 1 || !get_bytes(env, argv[0], &data, &length)) {
    napi_throw_type_error(env, "EINVAL", "xxh64(bytes: Uint8Array)");
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_bigint_uint64(env, xxh64(data, length, 0), &result));
  return result;
}

// pageSum(bytes): the page checksum (XXH64, never 0) of a whole Buffer or typed array, as a BigInt.
static napi_value page_sum_value(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *data;
  size_t length;
  if (argc != 1 || !get_bytes(env, argv[0], &data, &length)) {
    napi_throw_type_error(env, "EINVAL", "pageSum(bytes: Uint8Array)");
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_bigint_uint64(env, page_sum(data, length), &result));
  return result;
}

// pageSums(bytes, pageSize, out: BigUint64Array): out[i] = the checksum of page i of bytes, for
// every whole page that fits both (a short last page is hashed as it is). Returns the pages summed.
static napi_value page_sums(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *data;
  size_t length, count;
  uint32_t page_size;
  uint64_t *out;
  if (argc != 3 || !get_bytes(env, argv[0], &data, &length) || napi_get_value_uint32(env, argv[1], &page_size) != napi_ok ||
      page_size == 0 || !get_sums(env, argv[2], &out, &count)) {
    napi_throw_type_error(env, "EINVAL", "pageSums(bytes: Uint8Array, pageSize, out: BigUint64Array)");
    return NULL;
  }
  size_t pages = (length + page_size - 1) / page_size;
  if (pages > count) pages = count;
  size_t whole = length / page_size < pages ? length / page_size : pages;
  page_sums_many(data, page_size, whole, out);
  if (whole < pages) out[whole] = page_sum(data + whole * (size_t)page_size, length - whole * (size_t)page_size);
  napi_value result;
  CHECK(napi_create_uint32(env, (uint32_t)pages, &result));
  return result;
}

// verifyPages(bytes, pageSize, expected: BigUint64Array, from): the first page i >= from of
// bytes (whole pages only) whose expected sum is not 0 and differs from its bytes' checksum, or
// -1 when there is none. A page whose expected sum is 0 is not checked (the caller decides).
static napi_value verify_pages(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *data;
  size_t length, count;
  uint32_t page_size, from;
  uint64_t *expected;
  if (argc != 4 || !get_bytes(env, argv[0], &data, &length) || napi_get_value_uint32(env, argv[1], &page_size) != napi_ok ||
      page_size == 0 || !get_sums(env, argv[2], &expected, &count) || napi_get_value_uint32(env, argv[3], &from) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "verifyPages(bytes: Uint8Array, pageSize, expected: BigUint64Array, from)");
    return NULL;
  }
  size_t pages = length / page_size;
  if (pages > count) pages = count;
  int32_t found = -1;
  uint64_t sums[64];
  for (size_t i = from; i < pages && found < 0; i += 64) {
    size_t n = pages - i < 64 ? pages - i : 64;
    page_sums_many(data + i * (size_t)page_size, page_size, n, sums);
    for (size_t k = 0; k < n; k++) {
      if (expected[i + k] != 0 && sums[k] != expected[i + k]) {
        found = (int32_t)(i + k);
        break;
      }
    }
  }
  napi_value result;
  CHECK(napi_create_int32(env, found, &result));
  return result;
}

// preadPages(fd, bytes, pageSize, positions: Float64Array, count, failed: Int32Array): piece i
// (pageSize bytes of fd from byte positions[i]) into bytes at i × pageSize, pieces that follow
// each other in the file in one pread; bytes past the end of the file read as zeros. Returns 0,
// or a negative errno with failed[0] the piece whose read failed. fsck reads scattered pages so:
// one call for hundreds of preads instead of one call each.
static napi_value pread_pages(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint8_t *data, *failed_bytes;
  size_t length, positions_length, failed_length;
  uint32_t page_size, count;
  double *positions;
  bool is;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  void *base;
  if (argc != 6 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || !get_bytes(env, argv[1], &data, &length) ||
      napi_get_value_uint32(env, argv[2], &page_size) != napi_ok || page_size == 0 ||
      napi_is_typedarray(env, argv[3], &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, argv[3], &type, &positions_length, &base, &buffer, &offset) != napi_ok || type != napi_float64_array ||
      napi_get_value_uint32(env, argv[4], &count) != napi_ok || count > positions_length || (size_t)count * page_size > length ||
      !get_bytes(env, argv[5], &failed_bytes, &failed_length) || failed_length < 4) {
    napi_throw_type_error(env, "EINVAL", "preadPages(fd, bytes, pageSize, positions: Float64Array, count, failed: Int32Array)");
    return NULL;
  }
  positions = base;
  int64_t result = 0;
  for (uint32_t i = 0; i < count && result == 0;) {
    if (!(positions[i] >= 0) || positions[i] > 9007199254740991.0) {
      result = -EINVAL;
      memcpy(failed_bytes, &i, 4);
      break;
    }
    // The run of pieces that follow each other from piece i.
    uint32_t run = 1;
    while (i + run < count && positions[i + run] == positions[i] + (double)run * page_size) run++;
    uint8_t *to = data + (size_t)i * page_size;
    size_t want = (size_t)run * page_size, done = 0;
    off_t at = (off_t)positions[i];
    while (done < want) {
      ssize_t n = pread(fd, to + done, want - done, at + (off_t)done);
      if (n < 0) {
        if (errno == EINTR) continue;
        result = -errno;
        uint32_t piece = i + (uint32_t)(done / page_size);
        memcpy(failed_bytes, &piece, 4);
        break;
      }
      if (n == 0) {
        memset(to + done, 0, want - done);
        break;
      }
      done += (size_t)n;
    }
    i += run;
  }
  napi_value value;
  CHECK(napi_create_int64(env, result, &value));
  return value;
}

// ---- a small file shared in memory (STORE/flux: a note is a store into the page cache, not a
// pwrite per rewritten page) ----

typedef struct {
  void *address;
  size_t length;
} mapping_t;

static void mapping_freed(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  mapping_t *m = hint;
  munmap(m->address, m->length);
  free(m);
}

// mapShared(fd, length): an ArrayBuffer over bytes [0, length) of fd (MAP_SHARED, read and
// write: stores reach the file's page cache at once). The file must hold those bytes for as long
// as the mapping lives (a store past the file's end is SIGBUS). unmapShared() detaches it; the
// memory is unmapped when V8 lets go of it.
static napi_value map_shared(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  int64_t length;
  if (argc != 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_get_value_int64(env, argv[1], &length) != napi_ok ||
      length <= 0 || length > (1LL << 30)) {
    napi_throw_type_error(env, "EINVAL", "mapShared(fd, length: 1 byte to 1 GiB)");
    return NULL;
  }
  void *address = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) return throw_errno(env, errno, "mmap");
  mapping_t *m = malloc(sizeof *m);
  if (m == NULL) {
    munmap(address, (size_t)length);
    return throw_errno(env, ENOMEM, "mmap");
  }
  m->address = address;
  m->length = (size_t)length;
  napi_value result;
  if (napi_create_external_arraybuffer(env, address, (size_t)length, mapping_freed, m, &result) != napi_ok) {
    munmap(address, (size_t)length);
    free(m);
    return NULL;
  }
  return result;
}

// unmapShared(buffer): detach an ArrayBuffer made by mapShared (no JavaScript can touch the
// mapping after this; it is unmapped once V8 frees it).
static napi_value unmap_shared(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is;
  if (argc != 1 || napi_is_arraybuffer(env, argv[0], &is) != napi_ok || !is) {
    napi_throw_type_error(env, "EINVAL", "unmapShared(buffer: ArrayBuffer)");
    return NULL;
  }
  bool detached;
  CHECK(napi_is_detached_arraybuffer(env, argv[0], &detached));
  if (!detached) CHECK(napi_detach_arraybuffer(env, argv[0]));
  return NULL;
}

// hashPath(scalarOnly?: boolean): which loop the hashes use ("avx512" or "scalar"); with an
// argument, first forces the scalar loop or not (for tests: both must give the same digests).
static napi_value hash_path(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 1) {
    bool scalar;
    if (napi_get_value_bool(env, argv[0], &scalar) != napi_ok) {
      napi_throw_type_error(env, "EINVAL", "hashPath(scalarOnly?: boolean)");
      return NULL;
    }
    scalar_only = scalar;
  }
  napi_value result;
  CHECK(napi_create_string_utf8(env, !scalar_only && avx512_usable() ? "avx512" : "scalar", NAPI_AUTO_LENGTH, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "utimensat", NAPI_AUTO_LENGTH, utimensat_nofollow, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "utimensat", fn));
  CHECK(napi_create_function(env, "mknod", NAPI_AUTO_LENGTH, mknod_path, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "mknod", fn));
  static const struct { const char *name; napi_callback cb; } more[] = {
    { "watchReadable", watch_readable }, { "watchPause", watch_pause }, { "watchResume", watch_resume }, { "watchClose", watch_close },
    { "spliceReply", splice_reply }, { "spliceCapacity", splice_capacity },
    { "peerCredentials", peer_credentials },
    { "xxh64", xxh64_value }, { "pageSum", page_sum_value }, { "pageSums", page_sums }, { "verifyPages", verify_pages },
    { "hashPath", hash_path }, { "preadPages", pread_pages },
    { "mapShared", map_shared }, { "unmapShared", unmap_shared },
  };
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
    CHECK(napi_create_function(env, more[i].name, NAPI_AUTO_LENGTH, more[i].cb, NULL, &fn));
    CHECK(napi_set_named_property(env, exports, more[i].name, fn));
  }
  return exports;
}

NAPI_MODULE_INIT() {
  return init(env, exports);
}
