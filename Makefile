# agentruns -- build, test and check.
#
#   make                   build the C modules for Lua 5.4 (build/lua5.4/agentruns/{sse,curl}.so)
#   make LUA=luajit        ... for LuaJIT (build/luajit/...); LUA=lua5.1 for Lua 5.1
#   make test              install what is missing, build, run every suite; ends "N passed, N failed"
#   make test-stress       the busted suites from a fresh clone in an owner-only dir, under CPU load
#   make asan              the spec suite against an ASan+UBSan build (Lua 5.4)
#   make valgrind          the spec suite under valgrind (no definite leaks)
#   make fuzz              run the libFuzzer targets for FUZZ_SECONDS each
#   make bench             the benchmarks
#   make docs              the HTML reference in build/docs (LDoc), and types/agentruns.lua (LuaCATS)
#   make rock              the source rocks of this commit in dist/ (library and sandbox)
#   make lint              luacheck + luarocks lint
#   make demo              start the sandbox and run examples/demo.lua against it
#   make sandbox           the local API sandbox in the foreground

LUA ?= lua5.4
CC ?= cc
BUILD ?= build/$(LUA)
FUZZ_SECONDS ?= 60

ifeq ($(LUA),luajit)
LUA_PC := luajit
LUA_BIN := luajit
else
LUA_PC := $(LUA)
LUA_BIN := $(LUA)
endif

LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PC) 2>/dev/null)
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wcast-qual -Wstrict-prototypes \
        -Wpointer-arith -Wundef -Werror=implicit-function-declaration
WERROR ?= -Werror
OPT ?= -O2 -g
CFLAGS_ALL = -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(OPT) $(WARN) $(WERROR) \
             $(LUA_CFLAGS) $(CURL_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = -shared $(LDFLAGS)

# agentruns.sse: the parser, nothing but Lua linked; agentruns.curl: sessions and transfers.
SSE_SRCS := src/lsse.c src/levents.c src/ljson.c src/sse.c src/buf.c src/error.c
CURL_SRCS := src/lcurl.c src/session.c src/transfer.c src/request.c src/headers.c src/buf.c src/error.c
HDRS := $(wildcard src/*.h)
SSE_OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SSE_SRCS))
CURL_OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CURL_SRCS))
MODULES := $(BUILD)/agentruns/sse.so $(BUILD)/agentruns/curl.so

.PHONY: all test test-stress deps docs rock asan valgrind fuzz bench lint demo sandbox clean

all: $(MODULES)

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/agentruns/sse.so: $(SSE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(SSE_OBJS)

$(BUILD)/agentruns/curl.so: $(CURL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(CURL_OBJS) $(CURL_LIBS)

deps:
	@sh scripts/deps.sh

test: deps
	@sh scripts/test.sh

test-stress: deps
	@sh scripts/stress.sh

asan:
	@sh scripts/test.sh asan

valgrind:
	@sh scripts/test.sh valgrind

fuzz:
	@sh scripts/fuzz.sh $(FUZZ_SECONDS)

# fuzz/unwind_test.c under ASan: a feed that an allocation error unwinds leaves nothing behind.
build/unwind_test: fuzz/unwind_test.c $(SSE_SRCS) $(HDRS)
	@mkdir -p build
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Werror -g -O1 -fno-omit-frame-pointer \
	  -fsanitize=address,undefined -fno-sanitize-recover=undefined -Isrc \
	  $(shell pkg-config --cflags lua5.4) fuzz/unwind_test.c $(SSE_SRCS) $(shell pkg-config --libs lua5.4) -o $@

bench: deps
	@$(MAKE) --no-print-directory LUA=lua5.4
	@$(MAKE) --no-print-directory LUA=luajit
	@sh scripts/bench.sh

docs: $(BUILD)/agentruns/sse.so
	@sh scripts/docs.sh $(BUILD)

rock:
	@sh scripts/rock.sh

lint:
	luacheck -q .
	for r in *.rockspec sandbox/*.rockspec; do luarocks lint $$r || exit 1; done

demo: deps
	@sh scripts/demo.sh

sandbox:
	@$(LUA_BIN) sandbox/bin/agentruns-sandbox --port $${PORT:-8089}

clean:
	rm -rf build dist
