import asyncio
async def one():
    r,w = await asyncio.open_connection("127.0.0.1",18611); w.write(b"G"); await w.drain()
    try: await asyncio.wait_for(r.read(100), 15)
    except Exception: pass
    w.close()
async def main(): await asyncio.gather(*[one() for _ in range(2000)])
asyncio.run(main())
