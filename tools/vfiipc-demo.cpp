// tools/vfiipc-demo.cpp — the demo exchange the README runs: a legacy-style program that acts
// as an echo server (impersonating "echo-server", as a multi-application controller may) and as
// its client, observes everything, and prints each step. Watch it with dbus-monitor.
#include <ipc/notify.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

using namespace vfiipc;

static std::mutex out_lock;
static std::atomic<int> replies(0);

static void say(const std::string &s)
{
        std::lock_guard<std::mutex> g(out_lock);
        std::printf("%s\n", s.c_str());
        std::fflush(stdout);
}

static void echo_server(void *, const std::string &from, const std::string &to,
                        const std::string &id, const JSObject &param, unsigned)
{
        say("  echo-server got '" + id + "' from " + from + " (to " + to + "): " + param.dump());
        JSObject reply = param;
        reply("echoed") = true;
        ipcNotify(from, "echo-reply", reply, 0, "echo-server");
}

static void echo_reply(void *, const std::string &from, const std::string &, const std::string &id,
                       const JSObject &param, unsigned)
{
        say("  demo-client got '" + id + "' from " + from + ": " + param.dump());
        replies++;
}

static void observer(void *, const std::string &from, const std::string &to, const std::string &id,
                     unsigned)
{
        say("  observer: " + from + " -> " + (to.empty() ? std::string("(nobody)") : to) + " : " + id);
}

static void unicast_error(void *, const std::string &, const std::string &to,
                          const std::string &id, const JSObject &, unsigned)
{
        say("  unicast error: nobody receives '" + id + "' for " + to);
        replies++;
}

int main(int argc, char **argv)
{
        int rounds = argc > 1 ? std::atoi(argv[1]) : 3;

        ipcSetAppID("demo-client");
        if (ipcRegisterNotificationCB("echo", echo_server, 0, 0, "echo-server") != NOTIFY_OK) {
                std::fprintf(stderr, "vfiipc-demo: no notification server (start notifysvc)\n");
                return 1;
        }
        ipcRegisterNotificationCB("echo-reply", echo_reply, 0);
        ipcRegisterObserver(observer, 0);
        ipcRegisterUnicastError(unicast_error, 0);

        for (int i = 1; i <= rounds; i++) {
                JSObject msg;
                msg("round") = i;
                msg("text") = "hello over D-Bus";
                say("demo-client sends 'echo' to echo-server: " + msg.dump());
                ipcNotify("echo-server", "echo", msg);
                std::this_thread::sleep_for(std::chrono::milliseconds(300));
        }
        say("demo-client sends 'ping' to an app that is not running");
        ipcNotify("not-running", "ping", JSObject());

        for (int i = 0; i < 50 && replies.load() < rounds + 1; i++)
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
        ipcUnregisterObserver(observer, 0);
        say(replies.load() == rounds + 1 ? "demo done" : "demo incomplete");
        return replies.load() == rounds + 1 ? 0 : 1;
}
