"""The store's schema as numbered SQL files (``V{n}__{name}.sql``), applied in order by
``bot.store``. A package so ``importlib.resources`` finds the files when the bot is installed."""
