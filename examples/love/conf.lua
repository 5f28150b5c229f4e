-- LÖVE configuration for the lua-ws echo client (examples/love).
function love.conf(t)
  t.version = "11.4"
  -- Screenshots and anything else love.filesystem writes go to
  -- ~/.local/share/love/lua-ws-love-echo/ on Linux
  -- (love.filesystem.getSaveDirectory() everywhere).
  t.identity = "lua-ws-love-echo"
  t.window.title = "lua-ws echo client (LÖVE)"
  t.window.width = 800
  t.window.height = 600
  t.window.vsync = 1
  -- No sound, so a machine (or Xvfb) without an audio device stays quiet.
  t.modules.audio = false
  t.modules.sound = false
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.video = false
end
