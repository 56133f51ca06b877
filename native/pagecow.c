// The few system calls pagecow needs that Node's fs module does not offer exactly:
//   utimensat(2)  set times to the nanosecond (fs.utimes takes a double of seconds: ~240 ns steps)
//   mknod(2)      FIFOs and device nodes (Node has no binding at all)
// Node-API only (no V8 headers), so the addon builds once per ABI, not per Node release.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <node_api.h>

#define CHECK(call) do { if ((call) != napi_ok) return NULL; } while (0)

// A JS Error with `code` and `errno` set as node:fs sets them, so fromSystemError() reads it.
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  static const struct { int n; const char *code; } codes[] = {
    { ENOENT, "ENOENT" }, { EACCES, "EACCES" }, { EPERM, "EPERM" }, { EROFS, "EROFS" },
    { ENOTDIR, "ENOTDIR" }, { ELOOP, "ELOOP" }, { ENAMETOOLONG, "ENAMETOOLONG" }, { EINVAL, "EINVAL" },
    { EIO, "EIO" }, { ENOSPC, "ENOSPC" }, { EBADF, "EBADF" }, { EOVERFLOW, "EOVERFLOW" }, { EEXIST, "EEXIST" },
    { EDQUOT, "EDQUOT" },
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

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "utimensat", NAPI_AUTO_LENGTH, utimensat_nofollow, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "utimensat", fn));
  CHECK(napi_create_function(env, "mknod", NAPI_AUTO_LENGTH, mknod_path, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "mknod", fn));
  return exports;
}

NAPI_MODULE_INIT() {
  return init(env, exports);
}
