// The few system calls pagecow needs that Node's fs module does not offer exactly:
//   utimensat(2)  set times to the nanosecond (fs.utimes takes a double of seconds: ~240 ns steps)
//   mknod(2)      FIFOs and device nodes (Node has no binding at all)
//   poll(2)       readiness of /dev/fuse on the event loop (libuv's uv_poll), so requests are read
//                 where they are served instead of by threads parked in the pool
//   splice(2)     a FUSE read reply straight from the lower's page cache (no copy through memory
//                 of ours: Node cannot splice)
//   SO_PEERCRED   who is on the other end of a Unix socket (the control socket serves its owner only)
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
