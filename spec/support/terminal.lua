--[[
A real terminal for specs: a command run in a detached tmux pane (its own server socket, a
fixed size), with its raw output also recorded by script(1), so that a spec can read both
what the screen shows (tmux capture-pane) and every byte that was written to draw it.

  local term = terminal.start(command, { width = 100, height = 40 })
  term.wait_for("approve%? %[y/N%]")     -- polls the screen, bounded (default 30 s)
  term.keys("y", "Enter")
  local code = term.wait_exit()          -- the command's exit status
  local screen, raw = term.screen(), term.raw()
  term.stop()

Waiting is always for something to appear on the screen, never for a length of time.
]]
local shell_quote = require("spec.support.files").shell_quote

local M = {}

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

function M.start(command, opts)
  opts = opts or {}
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. shell_quote(dir)))
  local sock, raw_file = dir .. "/tmux.sock", dir .. "/raw"
  -- a sanitizer preloaded into this process must not reach tmux and script(1): they would exit
  -- with its leak reports; the command under test sets its own environment
  local tmux = "env -u LD_PRELOAD tmux -f /dev/null -S " .. shell_quote(sock)
  -- script records the bytes; the exit status line comes after it, for wait_exit to find
  local inner = "script -qfec " .. shell_quote(command) .. " " .. shell_quote(raw_file)
    .. "; echo \"[exit=$?]\"; sleep 600"
  local out = sh(string.format("%s new-session -d -x %d -y %d %s", tmux, opts.width or 100, opts.height or 40,
    shell_quote("sh -c " .. shell_quote(inner))))
  assert(out == "", "tmux did not start: " .. out)
  local term = {}

  --- What the pane shows now, its lines with trailing blanks cut, trailing empty lines dropped.
  function term.screen()
    local text = sh(tmux .. " capture-pane -p")
    local lines = {}
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = (line:gsub("%s+$", "")) end
    while #lines > 0 and lines[#lines] == "" do lines[#lines] = nil end
    return lines
  end

  --- Poll the screen until `pattern` matches a line of it; the line, or an error after `seconds`.
  function term.wait_for(pattern, seconds)
    local deadline = os.time() + (seconds or 30)
    repeat
      for _, line in ipairs(term.screen()) do
        if line:find(pattern) then return line end
      end
      sleep(0.05)
    until os.time() > deadline
    error("the terminal never showed " .. pattern .. "; it shows:\n" .. table.concat(term.screen(), "\n"))
  end

  function term.keys(...)
    local words = {}
    for i, k in ipairs { ... } do words[i] = shell_quote(k) end
    sh(tmux .. " send-keys " .. table.concat(words, " "))
  end

  --- Wait for the command to end; its exit status. The status line is taken off the screen.
  function term.wait_exit(seconds)
    local line = term.wait_for("^%[exit=%d+%]$", seconds)
    return tonumber(line:match("%d+"))
  end

  --- The screen without the exit status line the wrapper added.
  function term.output()
    local lines = term.screen()
    if lines[#lines] and lines[#lines]:match("^%[exit=%d+%]$") then lines[#lines] = nil end
    return lines
  end

  --- Every byte the command wrote to the terminal.
  function term.raw()
    local f = io.open(raw_file, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
  end

  function term.stop()
    sh(tmux .. " kill-server")
    os.execute("rm -rf " .. shell_quote(dir))
  end

  return term
end

return M
