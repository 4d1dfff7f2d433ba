/* Test support only, never shipped: a stand-in bcryptprimitives.dll for Wine 8.
 *
 * Rust's std on Windows gets its random bytes from bcryptprimitives.dll!ProcessPrng
 * (Windows 10+). Wine 8 (Debian 12) has no such DLL, so portlab.exe dies at start-up there.
 * This exports ProcessPrng over advapi32's RtlGenRandom (SystemFunction036), which Wine has.
 * Built with the same mingw-w64 as portlab.exe by test-support/wine/run.sh, and put beside the
 * .exe only in the test build's directory.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
