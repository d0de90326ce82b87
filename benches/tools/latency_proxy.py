# A loopback TCP relay that delays every chunk sent upstream by DELAY seconds: about one
# round trip added per HTTP request. For docs/benchmarks.md, "the journal on a slow store":
#   python3 benches/tools/latency_proxy.py LISTEN_PORT TARGET_PORT DELAY_SECONDS
import asyncio, sys
listen, target, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
async def pipe(r, w, d):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            if d:
                await asyncio.sleep(d)
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        try: w.close()
        except Exception: pass
async def handle(cr, cw):
    sr, sw = await asyncio.open_connection('127.0.0.1', target)
    await asyncio.gather(pipe(cr, sw, delay), pipe(sr, cw, 0))
async def main():
    s = await asyncio.start_server(handle, '127.0.0.1', listen)
    async with s: await s.serve_forever()
asyncio.run(main())
