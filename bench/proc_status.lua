-- proc_status.lua -- one field of /proc/self/status, in kB (VmRSS, VmHWM, ...): how the
-- memory benchmarks read this process's resident memory.
return function(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+) kB"))
end
