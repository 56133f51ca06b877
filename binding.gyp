{
  "targets": [
    {
      "target_name": "pagecow",
      "sources": ["native/pagecow.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
