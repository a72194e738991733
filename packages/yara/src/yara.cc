// Node-API binding over libyara. Every libyara call that can take time (compile, load, save, scan)
// runs in a Napi::AsyncWorker on the libuv thread pool and settles a promise. Inputs are copied out
// of JS values on the main thread before Execute; Execute touches no JS value.
#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <openssl/evp.h>

extern "C" {
#include <yara.h>
}

#include "containers.h"
#include "content-signature.h"
#include "mapping-guard.h"

// The static archives are built for executables (PIE) and reach libc's stdin/stdout/stderr with
// PC-relative relocations, which a shared object cannot satisfy. The build renames those symbols in
// a private copy of the archives (scripts/build.js); these hidden stand-ins hold libc's streams.
extern "C" {
__attribute__((visibility("hidden"))) FILE* binaryalert_yr_stdin = stdin;
__attribute__((visibility("hidden"))) FILE* binaryalert_yr_stdout = stdout;
__attribute__((visibility("hidden"))) FILE* binaryalert_yr_stderr = stderr;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Errors: collected off the main thread as plain data, turned into JS errors in OnOK.

struct ErrorInfo {
  bool set = false;
  std::string code;     // libyara ERROR_* name, errno name (ENOENT...) or NOT_REGULAR_FILE
  std::string message;  // human readable, names the path when there is one
  int yaraCode = 0;     // libyara error number, 0 when not a libyara error
  int sysErrno = 0;     // errno, 0 when not a system call error
  std::string syscall;
  std::string path;
};

const char* YaraErrorName(int code) {
  switch (code) {
    case ERROR_SUCCESS: return "ERROR_SUCCESS";
    case ERROR_INSUFFICIENT_MEMORY: return "ERROR_INSUFFICIENT_MEMORY";
    case ERROR_COULD_NOT_ATTACH_TO_PROCESS: return "ERROR_COULD_NOT_ATTACH_TO_PROCESS";
    case ERROR_COULD_NOT_OPEN_FILE: return "ERROR_COULD_NOT_OPEN_FILE";
    case ERROR_COULD_NOT_MAP_FILE: return "ERROR_COULD_NOT_MAP_FILE";
    case ERROR_INVALID_FILE: return "ERROR_INVALID_FILE";
    case ERROR_CORRUPT_FILE: return "ERROR_CORRUPT_FILE";
    case ERROR_UNSUPPORTED_FILE_VERSION: return "ERROR_UNSUPPORTED_FILE_VERSION";
    case ERROR_INVALID_REGULAR_EXPRESSION: return "ERROR_INVALID_REGULAR_EXPRESSION";
    case ERROR_INVALID_HEX_STRING: return "ERROR_INVALID_HEX_STRING";
    case ERROR_SYNTAX_ERROR: return "ERROR_SYNTAX_ERROR";
    case ERROR_LOOP_NESTING_LIMIT_EXCEEDED: return "ERROR_LOOP_NESTING_LIMIT_EXCEEDED";
    case ERROR_DUPLICATED_LOOP_IDENTIFIER: return "ERROR_DUPLICATED_LOOP_IDENTIFIER";
    case ERROR_DUPLICATED_IDENTIFIER: return "ERROR_DUPLICATED_IDENTIFIER";
    case ERROR_DUPLICATED_TAG_IDENTIFIER: return "ERROR_DUPLICATED_TAG_IDENTIFIER";
    case ERROR_DUPLICATED_META_IDENTIFIER: return "ERROR_DUPLICATED_META_IDENTIFIER";
    case ERROR_DUPLICATED_STRING_IDENTIFIER: return "ERROR_DUPLICATED_STRING_IDENTIFIER";
    case ERROR_UNREFERENCED_STRING: return "ERROR_UNREFERENCED_STRING";
    case ERROR_UNDEFINED_STRING: return "ERROR_UNDEFINED_STRING";
    case ERROR_UNDEFINED_IDENTIFIER: return "ERROR_UNDEFINED_IDENTIFIER";
    case ERROR_MISPLACED_ANONYMOUS_STRING: return "ERROR_MISPLACED_ANONYMOUS_STRING";
    case ERROR_INCLUDES_CIRCULAR_REFERENCE: return "ERROR_INCLUDES_CIRCULAR_REFERENCE";
    case ERROR_INCLUDE_DEPTH_EXCEEDED: return "ERROR_INCLUDE_DEPTH_EXCEEDED";
    case ERROR_WRONG_TYPE: return "ERROR_WRONG_TYPE";
    case ERROR_EXEC_STACK_OVERFLOW: return "ERROR_EXEC_STACK_OVERFLOW";
    case ERROR_SCAN_TIMEOUT: return "ERROR_SCAN_TIMEOUT";
    case ERROR_TOO_MANY_SCAN_THREADS: return "ERROR_TOO_MANY_SCAN_THREADS";
    case ERROR_CALLBACK_ERROR: return "ERROR_CALLBACK_ERROR";
    case ERROR_INVALID_ARGUMENT: return "ERROR_INVALID_ARGUMENT";
    case ERROR_TOO_MANY_MATCHES: return "ERROR_TOO_MANY_MATCHES";
    case ERROR_INTERNAL_FATAL_ERROR: return "ERROR_INTERNAL_FATAL_ERROR";
    case ERROR_NESTED_FOR_OF_LOOP: return "ERROR_NESTED_FOR_OF_LOOP";
    case ERROR_INVALID_FIELD_NAME: return "ERROR_INVALID_FIELD_NAME";
    case ERROR_UNKNOWN_MODULE: return "ERROR_UNKNOWN_MODULE";
    case ERROR_NOT_A_STRUCTURE: return "ERROR_NOT_A_STRUCTURE";
    case ERROR_NOT_INDEXABLE: return "ERROR_NOT_INDEXABLE";
    case ERROR_NOT_A_FUNCTION: return "ERROR_NOT_A_FUNCTION";
    case ERROR_INVALID_FORMAT: return "ERROR_INVALID_FORMAT";
    case ERROR_TOO_MANY_ARGUMENTS: return "ERROR_TOO_MANY_ARGUMENTS";
    case ERROR_WRONG_ARGUMENTS: return "ERROR_WRONG_ARGUMENTS";
    case ERROR_WRONG_RETURN_TYPE: return "ERROR_WRONG_RETURN_TYPE";
    case ERROR_DUPLICATED_STRUCTURE_MEMBER: return "ERROR_DUPLICATED_STRUCTURE_MEMBER";
    case ERROR_EMPTY_STRING: return "ERROR_EMPTY_STRING";
    case ERROR_DIVISION_BY_ZERO: return "ERROR_DIVISION_BY_ZERO";
    case ERROR_REGULAR_EXPRESSION_TOO_LARGE: return "ERROR_REGULAR_EXPRESSION_TOO_LARGE";
    case ERROR_TOO_MANY_RE_FIBERS: return "ERROR_TOO_MANY_RE_FIBERS";
    case ERROR_COULD_NOT_READ_PROCESS_MEMORY: return "ERROR_COULD_NOT_READ_PROCESS_MEMORY";
    case ERROR_INVALID_EXTERNAL_VARIABLE_TYPE: return "ERROR_INVALID_EXTERNAL_VARIABLE_TYPE";
    case ERROR_REGULAR_EXPRESSION_TOO_COMPLEX: return "ERROR_REGULAR_EXPRESSION_TOO_COMPLEX";
    case ERROR_INVALID_MODULE_NAME: return "ERROR_INVALID_MODULE_NAME";
    case ERROR_TOO_MANY_STRINGS: return "ERROR_TOO_MANY_STRINGS";
    case ERROR_INTEGER_OVERFLOW: return "ERROR_INTEGER_OVERFLOW";
    case ERROR_CALLBACK_REQUIRED: return "ERROR_CALLBACK_REQUIRED";
    case ERROR_INVALID_OPERAND: return "ERROR_INVALID_OPERAND";
    case ERROR_COULD_NOT_READ_FILE: return "ERROR_COULD_NOT_READ_FILE";
    case ERROR_DUPLICATED_EXTERNAL_VARIABLE: return "ERROR_DUPLICATED_EXTERNAL_VARIABLE";
    case ERROR_INVALID_MODULE_DATA: return "ERROR_INVALID_MODULE_DATA";
    case ERROR_WRITING_FILE: return "ERROR_WRITING_FILE";
    case ERROR_INVALID_MODIFIER: return "ERROR_INVALID_MODIFIER";
    case ERROR_DUPLICATED_MODIFIER: return "ERROR_DUPLICATED_MODIFIER";
    case ERROR_BLOCK_NOT_READY: return "ERROR_BLOCK_NOT_READY";
    case ERROR_INVALID_PERCENTAGE: return "ERROR_INVALID_PERCENTAGE";
    case ERROR_IDENTIFIER_MATCHES_WILDCARD: return "ERROR_IDENTIFIER_MATCHES_WILDCARD";
    default: return "ERROR_UNKNOWN";
  }
}

const char* YaraErrorText(int code) {
  switch (code) {
    case ERROR_INSUFFICIENT_MEMORY: return "insufficient memory";
    case ERROR_COULD_NOT_OPEN_FILE: return "could not open file";
    case ERROR_COULD_NOT_MAP_FILE: return "could not map file";
    case ERROR_COULD_NOT_READ_FILE: return "could not read file";
    case ERROR_WRITING_FILE: return "could not write file";
    case ERROR_INVALID_FILE: return "not a compiled YARA rules file";
    case ERROR_CORRUPT_FILE: return "corrupt compiled YARA rules file";
    case ERROR_UNSUPPORTED_FILE_VERSION:
      return "compiled rules file was written by an incompatible libyara version";
    case ERROR_SCAN_TIMEOUT: return "scan timed out";
    case ERROR_TOO_MANY_SCAN_THREADS: return "too many scan threads";
    case ERROR_CALLBACK_ERROR: return "scan callback failed";
    case ERROR_INVALID_ARGUMENT: return "invalid argument";
    case ERROR_TOO_MANY_MATCHES: return "too many matches";
    case ERROR_INTERNAL_FATAL_ERROR: return "internal fatal error in libyara";
    case ERROR_EXEC_STACK_OVERFLOW: return "rule condition overflowed the execution stack";
    case ERROR_INVALID_EXTERNAL_VARIABLE_TYPE: return "external variable has another type";
    case ERROR_DUPLICATED_EXTERNAL_VARIABLE: return "external variable declared twice";
    case ERROR_TOO_MANY_RE_FIBERS: return "regular expression needs too many fibers";
    case ERROR_INVALID_MODULE_DATA: return "invalid module data";
    case ERROR_BLOCK_NOT_READY: return "memory block not ready";
    default: return "libyara error";
  }
}

void SetYaraError(ErrorInfo& e, int code, const std::string& context, const std::string& path = "") {
  e.set = true;
  e.code = YaraErrorName(code);
  e.yaraCode = code;
  e.path = path;
  e.message = context + ": " + YaraErrorText(code) + " (" + e.code + ")";
}

void SetErrnoError(ErrorInfo& e, int err, const char* syscall, const std::string& path) {
  char buf[256];
  const char* text = strerror_r(err, buf, sizeof buf);  // GNU variant returns the text
  const char* name = strerrorname_np(err);
  e.set = true;
  e.code = name != nullptr ? name : "EUNKNOWN";
  e.sysErrno = err;
  e.syscall = syscall;
  e.path = path;
  e.message = path + ": " + text + " (" + syscall + ")";
}

const char* FileTypeName(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

void SetFileTypeError(ErrorInfo& e, mode_t mode, const std::string& path) {
  e.set = true;
  e.code = "NOT_REGULAR_FILE";
  e.path = path;
  e.message = path + ": is " + FileTypeName(mode) + ", not a regular file";
}

Napi::Value ToJsError(Napi::Env env, const ErrorInfo& e) {
  Napi::Error err = Napi::Error::New(env, e.message);
  Napi::Object obj = err.Value();
  obj.Set("code", e.code);
  if (e.yaraCode != 0) obj.Set("yaraCode", e.yaraCode);
  if (e.sysErrno != 0) {
    obj.Set("errno", -e.sysErrno);  // negative, like Node's own system errors
    obj.Set("syscall", e.syscall);
  }
  if (!e.path.empty()) obj.Set("path", e.path);
  return obj;
}

// Opens a path without ever blocking (FIFOs) and accepts only regular files.
int OpenRegularFile(const std::string& path, struct stat* st, ErrorInfo& e) {
  // stat first so devices and FIFOs are rejected without being opened at all.
  if (stat(path.c_str(), st) != 0) {
    SetErrnoError(e, errno, "stat", path);
    return -1;
  }
  if (!S_ISREG(st->st_mode)) {
    SetFileTypeError(e, st->st_mode, path);
    return -1;
  }
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    SetErrnoError(e, errno, "open", path);
    return -1;
  }
  // The path may have been replaced between stat and open.
  if (fstat(fd, st) != 0) {
    SetErrnoError(e, errno, "fstat", path);
    close(fd);
    return -1;
  }
  if (!S_ISREG(st->st_mode)) {
    SetFileTypeError(e, st->st_mode, path);
    close(fd);
    return -1;
  }
  return fd;
}

double MonotonicMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock behind process.hrtime()
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// External variables, copied out of a JS object on the main thread.

struct ExternalVar {
  enum Kind { kString, kInteger, kFloat, kBoolean } kind;
  std::string name;
  std::string str;
  int64_t integer = 0;
  double real = 0;
  bool boolean = false;
};

std::vector<ExternalVar> ParseExternals(Napi::Env env, Napi::Value value) {
  std::vector<ExternalVar> out;
  if (value.IsUndefined() || value.IsNull()) return out;
  if (!value.IsObject()) throw Napi::TypeError::New(env, "externals must be an object");
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Array names = obj.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string name = names.Get(i).ToString().Utf8Value();
    Napi::Value v = obj.Get(name);
    ExternalVar ext;
    ext.name = name;
    if (v.IsString()) {
      ext.kind = ExternalVar::kString;
      ext.str = v.As<Napi::String>().Utf8Value();
      if (ext.str.find('\0') != std::string::npos) {
        throw Napi::TypeError::New(env, "external '" + name + "' contains a NUL character");
      }
    } else if (v.IsBoolean()) {
      ext.kind = ExternalVar::kBoolean;
      ext.boolean = v.As<Napi::Boolean>().Value();
    } else if (v.IsNumber()) {
      double d = v.As<Napi::Number>().DoubleValue();
      if (d == static_cast<double>(static_cast<int64_t>(d)) && d >= -9.2e18 && d <= 9.2e18) {
        ext.kind = ExternalVar::kInteger;
        ext.integer = static_cast<int64_t>(d);
      } else {
        ext.kind = ExternalVar::kFloat;
      }
      ext.real = d;
    } else {
      throw Napi::TypeError::New(env, "external '" + name + "' must be a string, number or boolean");
    }
    out.push_back(std::move(ext));
  }
  return out;
}

int DefineOnCompiler(YR_COMPILER* c, const ExternalVar& v) {
  switch (v.kind) {
    case ExternalVar::kString: return yr_compiler_define_string_variable(c, v.name.c_str(), v.str.c_str());
    case ExternalVar::kInteger: return yr_compiler_define_integer_variable(c, v.name.c_str(), v.integer);
    case ExternalVar::kFloat: return yr_compiler_define_float_variable(c, v.name.c_str(), v.real);
    case ExternalVar::kBoolean: return yr_compiler_define_boolean_variable(c, v.name.c_str(), v.boolean);
  }
  return ERROR_INVALID_ARGUMENT;
}

int DefineOnScanner(YR_SCANNER* s, const ExternalVar& v) {
  switch (v.kind) {
    case ExternalVar::kString: return yr_scanner_define_string_variable(s, v.name.c_str(), v.str.c_str());
    case ExternalVar::kInteger: {
      int rc = yr_scanner_define_integer_variable(s, v.name.c_str(), v.integer);
      // A whole number given for a variable declared as float.
      if (rc == ERROR_INVALID_EXTERNAL_VARIABLE_TYPE) rc = yr_scanner_define_float_variable(s, v.name.c_str(), v.real);
      return rc;
    }
    case ExternalVar::kFloat: return yr_scanner_define_float_variable(s, v.name.c_str(), v.real);
    case ExternalVar::kBoolean: return yr_scanner_define_boolean_variable(s, v.name.c_str(), v.boolean);
  }
  return ERROR_INVALID_ARGUMENT;
}

// ---------------------------------------------------------------------------------------------
// Promise-settling worker base.

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual Napi::Value Result(Napi::Env env) = 0;
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (error_.set) {
      deferred_.Reject(ToJsError(env, error_));
    } else {
      deferred_.Resolve(Result(env));
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  ErrorInfo error_;

 private:
  Napi::Promise::Deferred deferred_;
};

struct AddonData {
  Napi::FunctionReference rulesConstructor;
};

Napi::Object WrapRules(Napi::Env env, YR_RULES* rules);

// ---------------------------------------------------------------------------------------------
// Compile

struct CompileMessage {
  std::string file;
  int line;
  std::string message;
};

struct CompileMessages {
  std::vector<CompileMessage> errors;
  std::vector<CompileMessage> warnings;
  std::string fallbackFile;  // used when libyara reports no file name
};

void CompilerCallback(int level, const char* file, int line, const YR_RULE*, const char* message, void* user) {
  auto* msgs = static_cast<CompileMessages*>(user);
  CompileMessage m{file != nullptr ? file : msgs->fallbackFile, line, message != nullptr ? message : ""};
  if (level == YARA_ERROR_LEVEL_WARNING) {
    msgs->warnings.push_back(std::move(m));
  } else {
    msgs->errors.push_back(std::move(m));
  }
}

struct RuleSource {
  std::string path;
  std::string ns;
};

class CompileWorker : public PromiseWorker {
 public:
  CompileWorker(Napi::Env env, std::vector<RuleSource> sources, std::vector<ExternalVar> externals)
      : PromiseWorker(env, "yara:compile"), sources_(std::move(sources)), externals_(std::move(externals)) {}

  void Execute() override {
    YR_COMPILER* compiler = NewCompiler();
    if (compiler == nullptr) return;
    // libyara forbids adding more sources to a compiler after an error, so once one source fails
    // every later source is checked in a throwaway compiler of its own: all errors get reported.
    bool poisoned = false;
    for (const RuleSource& src : sources_) {
      if (!poisoned) {
        if (AddSource(compiler, src) > 0) poisoned = true;
      } else {
        YR_COMPILER* probe = NewCompiler();
        if (probe == nullptr) break;
        AddSource(probe, src);
        yr_compiler_destroy(probe);
      }
    }
    if (!poisoned && messages_.errors.empty() && !error_.set) {
      int rc = yr_compiler_get_rules(compiler, &rules_);
      if (rc != ERROR_SUCCESS) {
        rules_ = nullptr;
        SetYaraError(error_, rc, "could not build the compiled rules");
      }
    }
    yr_compiler_destroy(compiler);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("errors", MessagesToJs(env, messages_.errors));
    out.Set("warnings", MessagesToJs(env, messages_.warnings));
    if (rules_ != nullptr && messages_.errors.empty()) {
      YR_RULES* rules = rules_;
      rules_ = nullptr;
      out.Set("rules", WrapRules(env, rules));
    }
    return out;
  }

  ~CompileWorker() override {
    if (rules_ != nullptr) yr_rules_destroy(rules_);
  }

 private:
  YR_COMPILER* NewCompiler() {
    YR_COMPILER* c = nullptr;
    int rc = yr_compiler_create(&c);
    if (rc != ERROR_SUCCESS) {
      SetYaraError(error_, rc, "could not create a YARA compiler");
      return nullptr;
    }
    yr_compiler_set_callback(c, CompilerCallback, &messages_);
    for (const ExternalVar& v : externals_) {
      rc = DefineOnCompiler(c, v);
      if (rc != ERROR_SUCCESS) {
        SetYaraError(error_, rc, "could not declare external variable '" + v.name + "'");
        yr_compiler_destroy(c);
        return nullptr;
      }
    }
    return c;
  }

  // Returns the number of errors libyara reported for this source.
  int AddSource(YR_COMPILER* c, const RuleSource& src) {
    struct stat st;
    ErrorInfo openError;
    int fd = OpenRegularFile(src.path, &st, openError);
    if (fd < 0) {
      // Not a libyara error: the compiler stays usable, the compile as a whole still fails.
      messages_.errors.push_back({src.path, 0, "cannot read rule file: " + openError.message});
      return 0;
    }
    messages_.fallbackFile = src.path;
    int errors = yr_compiler_add_fd(c, fd, src.ns.c_str(), src.path.c_str());
    close(fd);
    return errors;
  }

  static Napi::Array MessagesToJs(Napi::Env env, const std::vector<CompileMessage>& msgs) {
    Napi::Array arr = Napi::Array::New(env, msgs.size());
    for (size_t i = 0; i < msgs.size(); i++) {
      Napi::Object m = Napi::Object::New(env);
      m.Set("file", msgs[i].file);
      m.Set("line", msgs[i].line);
      m.Set("message", msgs[i].message);
      arr.Set(static_cast<uint32_t>(i), m);
    }
    return arr;
  }

  std::vector<RuleSource> sources_;
  std::vector<ExternalVar> externals_;
  CompileMessages messages_;
  YR_RULES* rules_ = nullptr;
};

Napi::Value Compile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "sources must be an array");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<RuleSource> sources;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, "each source must be {path, namespace}");
    Napi::Object o = v.As<Napi::Object>();
    Napi::Value path = o.Get("path");
    Napi::Value ns = o.Get("namespace");
    if (!path.IsString() || !ns.IsString()) {
      throw Napi::TypeError::New(env, "each source must have string path and namespace");
    }
    sources.push_back({path.As<Napi::String>().Utf8Value(), ns.As<Napi::String>().Utf8Value()});
  }
  std::vector<ExternalVar> externals = ParseExternals(env, info.Length() > 1 ? info[1] : env.Undefined());
  auto* worker = new CompileWorker(env, std::move(sources), std::move(externals));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// ---------------------------------------------------------------------------------------------
// Load

size_t StreamRead(void* ptr, size_t size, size_t count, void* user) {
  return fread(ptr, size, count, static_cast<FILE*>(user));
}

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, std::string path) : PromiseWorker(env, "yara:load"), path_(std::move(path)) {}

  void Execute() override {
    struct stat st;
    int fd = OpenRegularFile(path_, &st, error_);
    if (fd < 0) return;
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    FILE* f = fdopen(fd, "rb");
    if (f == nullptr) {
      SetErrnoError(error_, errno, "fdopen", path_);
      close(fd);
      return;
    }
    YR_STREAM stream;
    stream.user_data = f;
    stream.read = StreamRead;
    stream.write = nullptr;
    int rc = yr_rules_load_stream(&stream, &rules_);
    fclose(f);
    if (rc != ERROR_SUCCESS) {
      rules_ = nullptr;
      SetYaraError(error_, rc, path_, path_);
    }
  }

  Napi::Value Result(Napi::Env env) override {
    YR_RULES* rules = rules_;
    rules_ = nullptr;
    return WrapRules(env, rules);
  }

  ~LoadWorker() override {
    if (rules_ != nullptr) yr_rules_destroy(rules_);
  }

 private:
  std::string path_;
  YR_RULES* rules_ = nullptr;
};

Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  auto* worker = new LoadWorker(env, info[0].As<Napi::String>().Utf8Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// ---------------------------------------------------------------------------------------------
// Rules object, save and scan

// Idle scanners of one rule set. Creating a scanner allocates per-rule and per-string state
// (noticeable with thousands of rules on small files), so each scan borrows one and gives it back,
// as the yara CLI keeps one scanner per thread. Owned by the Rules object, which outlives every
// scan that uses it (each worker holds a reference), and destroyed before the rules.
class ScannerPool {
 public:
  explicit ScannerPool(YR_RULES* rules) : rules_(rules) {}
  ~ScannerPool() {
    for (YR_SCANNER* s : idle_) yr_scanner_destroy(s);
  }

  // A scanner with every external variable back at its compile-time default.
  int Acquire(YR_SCANNER** out) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_.empty()) {
        *out = idle_.back();
        idle_.pop_back();
        return ResetExternals(*out);
      }
    }
    return yr_scanner_create(rules_, out);
  }

  void Release(YR_SCANNER* scanner) {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(scanner);
  }

 private:
  // The previous scan may have set externals this one leaves out.
  int ResetExternals(YR_SCANNER* s) {
    for (YR_EXTERNAL_VARIABLE* v = rules_->ext_vars_table; v != nullptr && !EXTERNAL_VARIABLE_IS_NULL(v); v++) {
      int rc = ERROR_SUCCESS;
      switch (v->type) {
        case EXTERNAL_VARIABLE_TYPE_INTEGER: rc = yr_scanner_define_integer_variable(s, v->identifier, v->value.i); break;
        case EXTERNAL_VARIABLE_TYPE_FLOAT: rc = yr_scanner_define_float_variable(s, v->identifier, v->value.f); break;
        case EXTERNAL_VARIABLE_TYPE_BOOLEAN: rc = yr_scanner_define_boolean_variable(s, v->identifier, v->value.i != 0); break;
        case EXTERNAL_VARIABLE_TYPE_STRING:
        case EXTERNAL_VARIABLE_TYPE_MALLOC_STRING:
          rc = yr_scanner_define_string_variable(s, v->identifier, v->value.s != nullptr ? v->value.s : "");
          break;
        default: break;
      }
      if (rc != ERROR_SUCCESS) {
        yr_scanner_destroy(s);
        return rc;
      }
    }
    return ERROR_SUCCESS;
  }

  YR_RULES* rules_;
  std::mutex mutex_;
  std::vector<YR_SCANNER*> idle_;
};

class Rules : public Napi::ObjectWrap<Rules> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeRules",
                       {
                           InstanceAccessor<&Rules::RuleCount>("ruleCount"),
                           InstanceMethod<&Rules::Save>("save"),
                           InstanceMethod<&Rules::ScanBuffer>("scanBuffer"),
                           InstanceMethod<&Rules::ScanFile>("scanFile"),
                       });
  }

  explicit Rules(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Rules>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "rules are created by compile() or load()");
    }
    rules_ = info[0].As<Napi::External<YR_RULES>>().Data();
    scanners_ = new ScannerPool(rules_);
  }

  ~Rules() override {
    delete scanners_;  // scanners first: they point into the rules
    if (rules_ != nullptr) yr_rules_destroy(rules_);
  }

  YR_RULES* rules() const { return rules_; }

 private:
  Napi::Value RuleCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rules_->num_rules); }
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value ScanBuffer(const Napi::CallbackInfo& info);
  Napi::Value ScanFile(const Napi::CallbackInfo& info);

  YR_RULES* rules_ = nullptr;
  ScannerPool* scanners_ = nullptr;
};

Napi::Object WrapRules(Napi::Env env, YR_RULES* rules) {
  AddonData* data = env.GetInstanceData<AddonData>();
  return data->rulesConstructor.New({Napi::External<YR_RULES>::New(env, rules)});
}

class SaveWorker : public PromiseWorker {
 public:
  SaveWorker(Napi::Env env, Napi::Object owner, YR_RULES* rules, std::string path)
      : PromiseWorker(env, "yara:save"), owner_(Napi::Persistent(owner)), rules_(rules), path_(std::move(path)) {}

  void Execute() override {
    int rc = yr_rules_save(rules_, path_.c_str());
    if (rc != ERROR_SUCCESS) SetYaraError(error_, rc, path_, path_);
  }

  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  Napi::ObjectReference owner_;  // keeps the rules alive while the worker runs
  YR_RULES* rules_;
  std::string path_;
};

Napi::Value Rules::Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  auto* worker = new SaveWorker(env, info.This().As<Napi::Object>(), rules_, info[0].As<Napi::String>().Utf8Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// Which digests of the scanned bytes a scan computes. MD5 costs more than SHA-256 here (SHA-256
// runs on the CPU's SHA extensions through OpenSSL; MD5 has none), so it can be limited to files
// that matched a rule, the only ones whose MD5 is stored or sent.
enum class Md5Mode { kNever, kAlways, kIfMatched };

struct ScanOptions {
  int timeoutSeconds = 60;
  bool fastMode = false;
  uint32_t maxOffsets = 10;
  bool sha256 = false;
  Md5Mode md5 = Md5Mode::kNever;
  // Also return the content signature (content-signature.h) of everything scanned.
  bool contentSignature = false;
  std::vector<ExternalVar> externals;
  // Set when the members of containers are to be scanned too (see containers.h).
  bool containers = false;
  std::string label;  // the object's display path, the root of every member path
  double budgetMs = 0;
  // When the whole analysis must end (CLOCK_MONOTONIC ms, process.hrtime's clock; 0 = none): bounds
  // the object's own scan as well as the members.
  double deadlineMs = 0;
  binaryalert::ContainerLimits limits;
};

double NumberOption(Napi::Env env, Napi::Object obj, const char* name, double fallback, double min) {
  Napi::Value v = obj.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < min) {
    throw Napi::TypeError::New(env, std::string(name) + " must be a number >= " + std::to_string(static_cast<int64_t>(min)));
  }
  return v.As<Napi::Number>().DoubleValue();
}

void ParseContainerOptions(Napi::Env env, Napi::Value value, ScanOptions& o) {
  if (value.IsUndefined() || value.IsNull()) return;
  if (!value.IsObject()) throw Napi::TypeError::New(env, "containers must be an object");
  Napi::Object obj = value.As<Napi::Object>();
  binaryalert::ContainerLimits& l = o.limits;
  o.containers = true;
  Napi::Value label = obj.Get("label");
  if (!label.IsUndefined()) {
    if (!label.IsString()) throw Napi::TypeError::New(env, "containers.label must be a string");
    o.label = label.As<Napi::String>().Utf8Value();
  }
  l.maxDepth = static_cast<int>(std::min(NumberOption(env, obj, "maxDepth", l.maxDepth, 0), 1000.0));
  l.maxMembers = static_cast<uint64_t>(NumberOption(env, obj, "maxMembers", static_cast<double>(l.maxMembers), 0));
  l.maxExpandedBytes =
      static_cast<uint64_t>(NumberOption(env, obj, "maxExpandedBytes", static_cast<double>(l.maxExpandedBytes), 0));
  l.maxRatio = NumberOption(env, obj, "maxRatio", l.maxRatio, 0);
  l.memoryMemberBytes =
      static_cast<uint64_t>(NumberOption(env, obj, "memoryMemberBytes", static_cast<double>(l.memoryMemberBytes), 0));
  o.budgetMs = NumberOption(env, obj, "budgetMs", 0, 0);
  o.deadlineMs = NumberOption(env, obj, "deadlineMs", 0, 0);
  Napi::Value handOff = obj.Get("handOffEncryptedSevenZip");
  if (!handOff.IsUndefined()) l.handOffEncryptedSevenZip = handOff.ToBoolean().Value();
  Napi::Value tempDir = obj.Get("tempDir");
  if (!tempDir.IsUndefined()) {
    if (!tempDir.IsString()) throw Napi::TypeError::New(env, "containers.tempDir must be a string");
    l.tempDir = tempDir.As<Napi::String>().Utf8Value();
  }
  Napi::Value passwords = obj.Get("passwords");
  if (!passwords.IsUndefined()) {
    if (!passwords.IsArray()) throw Napi::TypeError::New(env, "containers.passwords must be an array of strings");
    Napi::Array arr = passwords.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value p = arr.Get(i);
      if (!p.IsString()) throw Napi::TypeError::New(env, "containers.passwords must be an array of strings");
      l.passwords.push_back(p.As<Napi::String>().Utf8Value());
    }
  }
}

ScanOptions ParseScanOptions(Napi::Env env, Napi::Value value) {
  ScanOptions o;
  if (value.IsUndefined() || value.IsNull()) return o;
  if (!value.IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Value v = obj.Get("timeoutSeconds");
  if (!v.IsUndefined()) {
    if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0) {
      throw Napi::TypeError::New(env, "timeoutSeconds must be a non-negative number");
    }
    double t = v.As<Napi::Number>().DoubleValue();
    o.timeoutSeconds = t > 1e9 ? 1000000000 : static_cast<int>(t + 0.999999);  // whole seconds, rounded up
  }
  v = obj.Get("fastMode");
  if (!v.IsUndefined()) o.fastMode = v.ToBoolean().Value();
  v = obj.Get("sha256");
  if (!v.IsUndefined()) o.sha256 = v.ToBoolean().Value();
  v = obj.Get("md5");
  if (!v.IsUndefined() && !v.IsNull() && !(v.IsBoolean() && !v.As<Napi::Boolean>().Value())) {
    std::string mode = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
    if (mode == "always") {
      o.md5 = Md5Mode::kAlways;
    } else if (mode == "if-matched") {
      o.md5 = Md5Mode::kIfMatched;
    } else {
      throw Napi::TypeError::New(env, "md5 must be 'always' or 'if-matched'");
    }
  }
  v = obj.Get("contentSignature");
  if (!v.IsUndefined()) o.contentSignature = v.ToBoolean().Value();
  v = obj.Get("maxOffsetsPerString");
  if (!v.IsUndefined()) {
    if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0) {
      throw Napi::TypeError::New(env, "maxOffsetsPerString must be a non-negative number");
    }
    double m = v.As<Napi::Number>().DoubleValue();
    o.maxOffsets = m > 4e9 ? 4000000000u : static_cast<uint32_t>(m);
  }
  o.externals = ParseExternals(env, obj.Get("externals"));
  ParseContainerOptions(env, obj.Get("containers"), o);
  return o;
}

struct MetaValue {
  std::string key;
  int type;
  std::string str;
  int64_t integer;
};

struct StringHit {
  std::string identifier;
  std::vector<int64_t> offsets;
};

struct RuleHit {
  std::string rule;
  std::string ns;
  std::vector<std::string> tags;
  std::vector<MetaValue> metas;
  std::vector<StringHit> strings;
};

struct ScanState {
  uint32_t maxOffsets;
  std::vector<RuleHit> hits;
};

int ScanCallback(YR_SCAN_CONTEXT* context, int message, void* messageData, void* user) {
  if (message != CALLBACK_MSG_RULE_MATCHING) return CALLBACK_CONTINUE;
  auto* state = static_cast<ScanState*>(user);
  auto* rule = static_cast<YR_RULE*>(messageData);
  try {
    RuleHit hit;
    hit.rule = rule->identifier;
    hit.ns = rule->ns->name;
    const char* tag;
    yr_rule_tags_foreach(rule, tag) { hit.tags.emplace_back(tag); }
    YR_META* meta;
    yr_rule_metas_foreach(rule, meta) {
      hit.metas.push_back({meta->identifier, meta->type, meta->type == META_TYPE_STRING ? meta->string : "",
                           meta->integer});
    }
    YR_STRING* string;
    yr_rule_strings_foreach(rule, string) {
      StringHit s;
      bool matched = false;
      YR_MATCH* match;
      yr_string_matches_foreach(context, string, match) {  // skips private strings' matches
        matched = true;
        if (s.offsets.size() >= state->maxOffsets) break;
        s.offsets.push_back(match->base + match->offset);
      }
      if (matched) {
        s.identifier = string->identifier;
        hit.strings.push_back(std::move(s));
      }
    }
    state->hits.push_back(std::move(hit));
  } catch (...) {
    return CALLBACK_ERROR;
  }
  return CALLBACK_CONTINUE;
}

Napi::Array MatchesToJs(Napi::Env env, const std::vector<RuleHit>& hits) {
  Napi::Array matches = Napi::Array::New(env, hits.size());
  for (size_t i = 0; i < hits.size(); i++) {
    const RuleHit& h = hits[i];
    Napi::Object m = Napi::Object::New(env);
    m.Set("rule", h.rule);
    m.Set("namespace", h.ns);
    Napi::Array tags = Napi::Array::New(env, h.tags.size());
    for (size_t t = 0; t < h.tags.size(); t++) tags.Set(static_cast<uint32_t>(t), h.tags[t]);
    m.Set("tags", tags);
    Napi::Object meta = Napi::Object::New(env);
    for (const MetaValue& mv : h.metas) {
      if (mv.type == META_TYPE_STRING) {
        meta.Set(mv.key, mv.str);
      } else if (mv.type == META_TYPE_BOOLEAN) {
        meta.Set(mv.key, mv.integer != 0);
      } else {
        meta.Set(mv.key, static_cast<double>(mv.integer));
      }
    }
    m.Set("meta", meta);
    Napi::Array strings = Napi::Array::New(env, h.strings.size());
    for (size_t s = 0; s < h.strings.size(); s++) {
      Napi::Object so = Napi::Object::New(env);
      so.Set("identifier", h.strings[s].identifier);
      Napi::Array offsets = Napi::Array::New(env, h.strings[s].offsets.size());
      for (size_t k = 0; k < h.strings[s].offsets.size(); k++) {
        offsets.Set(static_cast<uint32_t>(k), static_cast<double>(h.strings[s].offsets[k]));
      }
      so.Set("offsets", offsets);
      strings.Set(static_cast<uint32_t>(s), so);
    }
    m.Set("strings", strings);
    matches.Set(static_cast<uint32_t>(i), m);
  }
  return matches;
}

// "2s", "1.5s": a timeout for error messages.
std::string SecondsText(double ms) {
  char text[32];
  snprintf(text, sizeof text, "%gs", ms / 1000.0);
  return text;
}

std::string HexDigest(const EVP_MD* md, const uint8_t* data, size_t size) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  static const uint8_t kEmpty = 0;
  if (EVP_Digest(size > 0 ? data : &kEmpty, size, digest, &len, md, nullptr) != 1) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned int i = 0; i < len; i++) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

class ScanWorker : public PromiseWorker {
 public:
  // Scans the bytes of a Buffer: small ones copied, larger ones in place (see Rules::ScanBuffer).
  ScanWorker(Napi::Env env, Napi::Object owner, ScannerPool* scanners, ScanOptions options, Napi::Uint8Array data)
      : PromiseWorker(env, "yara:scan"),
        owner_(Napi::Persistent(owner)),
        scanners_(scanners),
        options_(std::move(options)),
        isFile_(false) {
    if (data.ByteLength() < kCopiedBufferBytes) {
      copy_.assign(data.Data(), data.Data() + data.ByteLength());
      bytes_ = copy_.data();
    } else {
      buffer_ = Napi::Persistent(data);
      bytes_ = data.Data();
    }
    byteLength_ = data.ByteLength();
  }

  // Scans a file through a read-only mapping.
  ScanWorker(Napi::Env env, Napi::Object owner, ScannerPool* scanners, ScanOptions options, std::string path)
      : PromiseWorker(env, "yara:scan"),
        owner_(Napi::Persistent(owner)),
        scanners_(scanners),
        options_(std::move(options)),
        path_(std::move(path)),
        isFile_(true) {}

  void Execute() override {
    startedAt_ = MonotonicMs();
    if (options_.containers) {
      // The budget counts from the start of the whole scan (the object's own hash and scan
      // included); an absolute deadline also counts the time the scan waited for a thread.
      double fromBudget = options_.budgetMs > 0 ? startedAt_ + options_.budgetMs : 0;
      double fromDeadline = options_.deadlineMs;
      deadline_ = fromBudget > 0 && fromDeadline > 0 ? std::min(fromBudget, fromDeadline)
                                                     : std::max(fromBudget, fromDeadline);
    }
    const uint8_t* bytes = bytes_;
    size_t size = byteLength_;
    void* mapping = MAP_FAILED;
    int fd = -1;  // kept open to tell, if a read of the mapping faults, whether the file shrank
    binaryalert::GuardedMapping guard;
    if (isFile_) {
      struct stat st;
      fd = OpenRegularFile(path_, &st, error_);
      if (fd < 0) return Finish();
      size = static_cast<size_t>(st.st_size);
      if (size > 0) {
        mapping = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (mapping == MAP_FAILED) {
          SetErrnoError(error_, errno, "mmap", path_);
          close(fd);
          return Finish();
        }
        if (!guard.Guard(mapping, size)) {
          SetErrnoError(error_, EAGAIN, "mmap", path_);
          munmap(mapping, size);
          close(fd);
          return Finish();
        }
        madvise(mapping, size, MADV_SEQUENTIAL);
        bytes = static_cast<const uint8_t*>(mapping);
      }
    }
    static const uint8_t kEmpty = 0;
    if (size == 0) bytes = &kEmpty;
    size_ = size;

    // Digests and scan read the same mapping: the file is read from disk once.
    if (options_.sha256) Digest(EVP_sha256(), "SHA-256", bytes, size, sha256_);
    if (!error_.set && options_.md5 == Md5Mode::kAlways) Digest(EVP_md5(), "MD5", bytes, size, md5_);
    if (!error_.set && options_.containers && binaryalert::DetectContainer(bytes, size)[0] != '\0') {
      // The object's own scan and the walk through its members are independent, and on a
      // compressed archive each is about half the work: a second thread runs the walk beside it.
      std::thread members;
      try {
        members = std::thread([&] { ScanMembers(bytes, size); });
      } catch (const std::system_error&) {  // no thread to be had: one after the other
      }
      ScanOwn(bytes, size);
      if (members.joinable()) {
        members.join();
      } else {
        ScanMembers(bytes, size);
      }
    } else if (!error_.set) {
      ScanOwn(bytes, size);
      if (!error_.set && options_.containers) ScanMembers(bytes, size);
    }
    if (!error_.set && options_.contentSignature) {
      ownTrigrams_.Merge(memberTrigrams_);
      signature_ = ownTrigrams_.Signature();
    }
    if (!error_.set && md5Taken_ && md5_.empty()) {
      error_.set = true;
      error_.code = "HASH_FAILED";
      error_.message = Context("could not compute MD5");
    }
    // Every thread that read the mapping is done: what they found is void if a read faulted.
    if (guard.faulted()) SetTruncatedError(fd, size);
    guard.Release();
    if (mapping != MAP_FAILED) munmap(mapping, size);
    if (fd >= 0) close(fd);
    Finish();
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("matches", MatchesToJs(env, state_.hits));
    out.Set("size", static_cast<double>(size_));
    if (!sha256_.empty()) out.Set("sha256", sha256_);
    if (!md5_.empty()) out.Set("md5", md5_);
    if (options_.containers) out.Set("containers", ContainersToJs(env));
    if (!signature_.empty()) {
      out.Set("contentSignature", Napi::Buffer<uint8_t>::Copy(env, signature_.data(), signature_.size()));
    }
    out.Set("startedAt", startedAt_);
    out.Set("endedAt", endedAt_);
    return out;
  }

 private:
  void Finish() { endedAt_ = MonotonicMs(); }

  // The object's own scan; its MD5 at once if a rule matched.
  void ScanOwn(const uint8_t* bytes, size_t size) {
    if (options_.contentSignature) ownTrigrams_.Add(bytes, size);
    Scan(bytes, size);
    if (!error_.set && !state_.hits.empty()) Md5IfMatched(bytes, size);
  }

  // A rule matched the object itself or a member inside it: the object alerts, so its MD5 is sent.
  // Taken as soon as a match is known (by either thread), so the pass is spent inside the budget.
  void Md5IfMatched(const uint8_t* bytes, size_t size) {
    if (options_.md5 != Md5Mode::kIfMatched) return;
    std::lock_guard<std::mutex> lock(md5Mutex_);
    if (md5Taken_) return;
    md5Taken_ = true;
    md5_ = HexDigest(EVP_md5(), bytes, size);
  }

  void Digest(const EVP_MD* md, const char* name, const uint8_t* bytes, size_t size, std::string& out) {
    out = HexDigest(md, bytes, size);
    if (out.empty()) {
      error_.set = true;
      error_.code = "HASH_FAILED";
      error_.message = Context(std::string("could not compute ") + name);
    }
  }

  void Scan(const uint8_t* bytes, size_t size) {
    state_.maxOffsets = options_.maxOffsets;
    ScanBytes(bytes, size, options_.externals, TimeoutMs(), state_, error_, isFile_ ? path_ + ": " : "");
  }

  // The scan timeout, cut to what is left before the deadline (at least 1 ms); 0 = no limit.
  double TimeoutMs() const {
    double timeout = options_.timeoutSeconds * 1000.0;
    if (deadline_ <= 0) return timeout;
    double left = std::max(1.0, deadline_ - binaryalert::MonotonicNowMs());
    return timeout == 0 ? left : std::min(timeout, left);
  }

  // One libyara scan of `bytes` into `state`; failures go to `err` (hits cleared). `context`
  // prefixes the messages.
  int ScanBytes(const uint8_t* bytes, size_t size, const std::vector<ExternalVar>& externals, double timeoutMs,
                ScanState& state, ErrorInfo& err, const std::string& context) {
    YR_SCANNER* scanner = nullptr;
    int rc = scanners_->Acquire(&scanner);
    if (rc != ERROR_SUCCESS) {
      SetYaraError(err, rc, context + "could not create a scanner", path_);
      return rc;
    }
    for (const ExternalVar& v : externals) {
      rc = DefineOnScanner(scanner, v);
      if (rc != ERROR_SUCCESS) {
        SetYaraError(err, rc,
                     context + (rc == ERROR_INVALID_ARGUMENT
                                    ? "external variable '" + v.name + "' was not declared when the rules were compiled"
                                    : "could not set external variable '" + v.name + "'"),
                     path_);
        scanners_->Release(scanner);
        return rc;
      }
    }
    yr_scanner_set_callback(scanner, ScanCallback, &state);
    // libyara 4.2 keeps the timeout in nanoseconds; its setter takes whole seconds.
    yr_scanner_set_timeout(scanner, 0);
    scanner->timeout = static_cast<uint64_t>(timeoutMs * 1e6);
    // NO_TRYCATCH: faults on file mappings are the addon's SIGBUS handler's (mapping-guard.h).
    yr_scanner_set_flags(scanner, SCAN_FLAGS_REPORT_RULES_MATCHING | SCAN_FLAGS_NO_TRYCATCH |
                                      (options_.fastMode ? SCAN_FLAGS_FAST_MODE : 0));
    rc = yr_scanner_scan_mem(scanner, bytes, size);
    scanners_->Release(scanner);
    if (rc != ERROR_SUCCESS) {
      state.hits.clear();
      SetYaraError(err, rc,
                   context + (rc == ERROR_SCAN_TIMEOUT ? "scan timed out after " + SecondsText(timeoutMs) : "scan failed"),
                   path_);
    }
    return rc;
  }

  // --- Members of containers (containers.h): each is hashed and scanned in this same thread with
  // externals derived from its display path.

  struct MemberRecord {
    std::string path;
    std::string type;
    std::string linkTarget;
    std::string sha256;
    size_t size = 0;
    int depth = 0;
    std::vector<RuleHit> hits;
  };

  // The externals of a member: the object's, with filename/filepath/extension/filetype (where the
  // caller declared them) taken from the member's display path, as externalsForPath does in core.
  std::vector<ExternalVar> MemberExternals(const binaryalert::MemberView& m) const {
    std::string filename = m.name;
    while (!filename.empty() && (filename.back() == '/' || filename.back() == '\\')) filename.pop_back();
    size_t slash = filename.find_last_of("/\\");
    if (slash != std::string::npos) filename = filename.substr(slash + 1);
    size_t dot = filename.rfind('.');
    bool onlyDotsBefore = dot != std::string::npos && filename.find_first_not_of('.') >= dot;
    std::string extension = dot == std::string::npos || onlyDotsBefore ? "" : filename.substr(dot);
    std::string filetype = dot == std::string::npos ? "" : filename.substr(dot + 1);
    for (char& c : filetype) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    std::vector<ExternalVar> out = options_.externals;
    for (ExternalVar& v : out) {
      if (v.kind != ExternalVar::kString) continue;
      if (v.name == "filename") v.str = filename;
      if (v.name == "filepath") v.str = m.path;
      if (v.name == "extension") v.str = extension;
      if (v.name == "filetype") v.str = filetype;
      v.str.erase(std::remove(v.str.begin(), v.str.end(), '\0'), v.str.end());
    }
    return out;
  }

  void ScanMembers(const uint8_t* bytes, size_t size) {
    binaryalert::ContainerLimits limits = options_.limits;
    double deadline = deadline_;
    limits.deadlineMs = deadline;
    if (isFile_) limits.objectFile = path_;
    auto visit = [&](const binaryalert::MemberView& m) {
      MemberRecord record;
      record.path = m.path;
      record.type = m.type;
      record.linkTarget = m.linkTarget;
      record.depth = m.depth;
      if (m.type != "file") {
        members_.push_back(std::move(record));
        return binaryalert::VisitResult::kContinue;
      }
      if (deadline > 0 && deadline - binaryalert::MonotonicNowMs() <= 0) return binaryalert::VisitResult::kTimeLimit;
      record.size = m.size;
      ScanState state;
      state.maxOffsets = options_.maxOffsets;
      ErrorInfo err;
      if (options_.contentSignature) memberTrigrams_.Add(m.data, m.size);
      int rc = ScanBytes(m.data, m.size, MemberExternals(m), TimeoutMs(), state, err, "");
      // Its temp file could not be read (zeros were read instead): nothing found in it stands, and
      // the object is partly unscanned (so no content signature is kept for it either).
      if (m.guard != nullptr && m.guard->faulted()) {
        memberUnscanned_.push_back({m.path, "scan-error", "its temp file could not be read while it was scanned"});
        members_.push_back(std::move(record));
        return binaryalert::VisitResult::kContinue;
      }
      if (rc == ERROR_SCAN_TIMEOUT) {
        memberUnscanned_.push_back({m.path, "time-limit", err.message});
        return deadline > 0 && binaryalert::MonotonicNowMs() >= deadline ? binaryalert::VisitResult::kTimeLimit
                                                                         : binaryalert::VisitResult::kContinue;
      }
      if (rc != ERROR_SUCCESS) memberUnscanned_.push_back({m.path, "scan-error", err.message});
      // A member's SHA-256 is recorded only where a rule matched it (the alert and the match table
      // name it); hashing every member cost as much as a tenth of the archive's scan.
      if (!state.hits.empty()) {
        record.sha256 = HexDigest(EVP_sha256(), m.data, m.size);
        Md5IfMatched(bytes, size);
      }
      record.hits = std::move(state.hits);
      members_.push_back(std::move(record));
      return binaryalert::VisitResult::kContinue;
    };
    binaryalert::WalkContainers(bytes, size, options_.label, limits, visit, walk_);
    for (binaryalert::UnscannedEntry& entry : memberUnscanned_) walk_.unscanned.push_back(std::move(entry));
  }

  static Napi::Array UnscannedToJs(Napi::Env env, const std::vector<binaryalert::UnscannedEntry>& entries) {
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object u = Napi::Object::New(env);
      u.Set("path", entries[i].path);
      u.Set("reason", entries[i].reason);
      u.Set("detail", entries[i].detail);
      out.Set(static_cast<uint32_t>(i), u);
    }
    return out;
  }

  Napi::Object ContainersToJs(Napi::Env env) const {
    Napi::Object out = Napi::Object::New(env);
    Napi::Array members = Napi::Array::New(env, members_.size());
    for (size_t i = 0; i < members_.size(); i++) {
      const MemberRecord& r = members_[i];
      Napi::Object m = Napi::Object::New(env);
      m.Set("path", r.path);
      m.Set("type", r.type);
      m.Set("depth", r.depth);
      if (r.type == "file") {
        m.Set("size", static_cast<double>(r.size));
        if (!r.sha256.empty()) m.Set("sha256", r.sha256);
        m.Set("matches", MatchesToJs(env, r.hits));
      } else if (!r.linkTarget.empty()) {
        m.Set("linkTarget", r.linkTarget);
      }
      members.Set(static_cast<uint32_t>(i), m);
    }
    Napi::Array unscanned = UnscannedToJs(env, walk_.unscanned);
    Napi::Array sealed = Napi::Array::New(env, walk_.sealed.size());
    for (size_t i = 0; i < walk_.sealed.size(); i++) {
      const binaryalert::SealedSevenZip& a = walk_.sealed[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("path", a.path);
      o.Set("file", a.file);
      o.Set("owned", a.owned);
      o.Set("depth", a.depth);
      o.Set("size", static_cast<double>(a.size));
      o.Set("encrypted", UnscannedToJs(env, a.encrypted));
      Napi::Array names = Napi::Array::New(env, a.scannedNames.size());
      for (size_t k = 0; k < a.scannedNames.size(); k++) names.Set(static_cast<uint32_t>(k), a.scannedNames[k]);
      o.Set("scannedNames", names);
      sealed.Set(static_cast<uint32_t>(i), o);
    }
    out.Set("members", members);
    out.Set("unscanned", unscanned);
    out.Set("encryptedSevenZips", sealed);
    out.Set("expandedBytes", static_cast<double>(walk_.expandedBytes));
    return out;
  }

  std::string Context(const std::string& what) const { return isFile_ ? path_ + ": " + what : what; }

  // A read of the file's mapping faulted: the file shrank while it was scanned (or, where it did not,
  // its pages could not be read). Replaces any other outcome: the bytes read were not the file's.
  void SetTruncatedError(int fd, size_t mappedSize) {
    struct stat now;
    bool shrank = fstat(fd, &now) == 0 && static_cast<uint64_t>(now.st_size) < mappedSize;
    error_ = ErrorInfo();
    error_.set = true;
    error_.code = "FILE_TRUNCATED";
    error_.path = path_;
    error_.message = shrank ? Context("the file shrank while it was scanned (" + std::to_string(mappedSize) +
                                      " bytes when opened, " + std::to_string(now.st_size) + " after)")
                            : Context("part of the file could not be read while it was scanned (it shrank and grew "
                                      "again, or the device failed to read it)");
  }

  Napi::ObjectReference owner_;  // keeps the rules (and their scanner pool) alive while the scan runs
  ScannerPool* scanners_;
  ScanOptions options_;
  // Buffers this small are copied; larger ones are read in place, kept alive by buffer_ (a copy
  // of a large object cost the event loop about 0.6 ms per MB, page faults included).
  static constexpr size_t kCopiedBufferBytes = 64 * 1024;
  std::vector<uint8_t> copy_;
  Napi::Reference<Napi::Uint8Array> buffer_;
  const uint8_t* bytes_ = nullptr;
  size_t byteLength_ = 0;
  std::string path_;
  bool isFile_;
  ScanState state_;
  std::vector<MemberRecord> members_;
  binaryalert::WalkTotals walk_;
  // The visitor's own (it may run on the walk's second thread; merged into walk_ after the walk).
  std::vector<binaryalert::UnscannedEntry> memberUnscanned_;
  size_t size_ = 0;
  std::string sha256_;
  std::string md5_;
  std::mutex md5Mutex_;  // the own scan's thread and the walk's may both find a match
  bool md5Taken_ = false;
  // The object's trigrams (its own scan's thread) and its members' (the walk's thread), merged at the end.
  binaryalert::TrigramSet ownTrigrams_;
  binaryalert::TrigramSet memberTrigrams_;
  std::vector<uint8_t> signature_;
  double startedAt_ = 0;
  double endedAt_ = 0;
  double deadline_ = 0;  // MonotonicNowMs() after which nothing more is scanned; 0 = none
};

Napi::Value Rules::ScanBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "data must be a Buffer");
  Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
  ScanOptions options = ParseScanOptions(env, info.Length() > 1 ? info[1] : env.Undefined());
  auto* worker = new ScanWorker(env, info.This().As<Napi::Object>(), scanners_, std::move(options), buf);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value Rules::ScanFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  ScanOptions options = ParseScanOptions(env, info.Length() > 1 ? info[1] : env.Undefined());
  auto* worker = new ScanWorker(env, info.This().As<Napi::Object>(), scanners_, std::move(options), std::move(path));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// ---------------------------------------------------------------------------------------------

std::once_flag initOnce;
int initResult = ERROR_SUCCESS;

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  std::call_once(initOnce, [] {  // once per process, never finalized
    initResult = yr_initialize();
    binaryalert::InstallMappingGuard();
  });
  if (initResult != ERROR_SUCCESS) {
    throw Napi::Error::New(env, std::string("yr_initialize failed: ") + YaraErrorName(initResult));
  }
  auto* data = new AddonData();
  Napi::Function ctor = Rules::Define(env);
  data->rulesConstructor = Napi::Persistent(ctor);
  env.SetInstanceData<AddonData>(data);

  exports.Set("compile", Napi::Function::New(env, Compile, "compile"));
  exports.Set("load", Napi::Function::New(env, Load, "load"));
  exports.Set("NativeRules", ctor);
  exports.Set("version", Napi::String::New(env, YR_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(yara, Init)
